package procfs

import (
	"math"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOpenFiles(t *testing.T) {
	const head = "Limit                     Soft Limit           Hard Limit           Units     \nMax cpu time              unlimited            unlimited            seconds   \n"
	for _, c := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{head + "Max open files            20000                20000                files     \nMax locked memory         8388608              8388608              bytes     \n", 20000, true},
		{head + "Max open files            1073741816           1073741816           files\n", 1073741816, true},
		{head + "Max open files            unlimited            unlimited            files\n", math.MaxUint64, true},
		{head, 0, false},
		{head + "Max open files            many                 20000                files\n", 0, false},
		{head + "Max open files\n", 0, false},
	} {
		got, err := parseOpenFiles([]byte(c.in))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseOpenFiles(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

// The limit read from /proc is the process's own soft limit.
func TestOpenFilesLimitOfThisProcess(t *testing.T) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	got, err := OpenFilesLimit(os.Getpid())
	if err != nil || got != rl.Cur {
		t.Errorf("OpenFilesLimit(self) = %d, %v; getrlimit says %d", got, err, rl.Cur)
	}
}
