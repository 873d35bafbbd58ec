// temporary debugging helper; deleted before review
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sitectl/sitectl/test/sandbox"
)

func main() {
	sandbox.HandleSignals()
	ctx := context.Background()
	sb, err := sandbox.Boot(ctx, sandbox.Options{Name: "dbg"})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer sb.Close()
	bin := os.Args[1]
	for _, f := range [][2]string{{"sitectl", "/usr/bin/sitectl"}, {"sitectl-generator", "/usr/lib/systemd/system-generators/sitectl-generator"}, {"webapp", "/usr/local/bin/webapp"}} {
		if err := sb.CopyFile(ctx, filepath.Join(bin, f[0]), f[1], 0o755); err != nil {
			fmt.Println(err)
			return
		}
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		t0 := time.Now()
		out, err := sb.Run(ctx, "bash", "-c", sc.Text())
		fmt.Printf("$ %s   [%s] err=%v\n%s\n", sc.Text(), time.Since(t0).Round(time.Millisecond), err, out)
	}
}
