package cli_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sitectl/sitectl/internal/cli"
	"github.com/sitectl/sitectl/internal/jsonschema"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"sitectl": func() { os.Exit(sitectlCheckingJSON(os.Args[1:])) },
	})
}

// jsonLogEnv names the file where each sitectl run by a script records
// whether its --json output fits the documented schema.
const jsonLogEnv = "SITECTL_TEST_JSON_LOG"

// sitectlCheckingJSON runs sitectl; with --json, it checks what sitectl
// printed against the schema of its verb and appends the verdict to the
// file named by $SITECTL_TEST_JSON_LOG, one line per run:
// "ok VERB", "empty VERB" (nothing printed: bad input) or "fail VERB: why".
func sitectlCheckingJSON(args []string) int {
	verb, schema, isJSON := cli.JSONOutputOf(args)
	logFile := os.Getenv(jsonLogEnv)
	if !isJSON || logFile == "" {
		return cli.Main(args, os.Stdout, os.Stderr)
	}
	var out bytes.Buffer
	code := cli.Main(args, io.MultiWriter(os.Stdout, &out), os.Stderr)
	verdict := "ok " + verb
	switch {
	case out.Len() == 0:
		verdict = "empty " + verb
	case jsonschema.Validate(schema, out.Bytes()) != nil:
		err := jsonschema.Validate(schema, out.Bytes())
		verdict = fmt.Sprintf("fail %s: sitectl %s: %s", verb, strings.Join(args, " "), strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		_, err = f.WriteString(verdict + "\n")
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot record the json check: %v\n", err)
		return 99
	}
	return code
}

// TestScripts pins the command line's behaviour: messages, exit codes,
// output. See testdata/script/*.txtar. Every --json output a script makes
// is checked against its verb's documented schema.
func TestScripts(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "json.log")
	t.Run("scripts", func(t *testing.T) {
		testscript.Run(t, testscript.Params{
			Dir:   "testdata/script",
			Setup: func(env *testscript.Env) error { env.Setenv(jsonLogEnv, logFile); return nil },
			Cmds:  map[string]func(ts *testscript.TestScript, neg bool, args []string){"expect-code": expectCode},
		})
	})
	checkJSONLog(t, logFile, []string{"check", "history", "status"})
}

// checkJSONLog fails for every --json output that did not fit its schema,
// and when a verb in want printed JSON in no script.
func checkJSONLog(t *testing.T, logFile string, want []string) {
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("no script ran sitectl with --json: %v", err)
	}
	var seen []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		verdict, verb, _ := strings.Cut(l, " ")
		switch verdict {
		case "fail":
			t.Errorf("--json output does not fit docs/json: %s", verb)
		case "ok":
			seen = append(seen, verb)
		}
	}
	for _, v := range want {
		if !slices.Contains(seen, v) {
			t.Errorf("no script checks what sitectl %s --json prints", v)
		}
	}
}

// expectCode runs a command and checks its exact exit code:
//
//	expect-code 2 sitectl check bad.toml
//
// Its output becomes stdout and stderr for the checks that follow.
func expectCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: expect-code CODE COMMAND [ARG...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("expect-code: %q is not a number", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("expect-code: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}
