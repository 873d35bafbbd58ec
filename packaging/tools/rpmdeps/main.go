// Command rpmdeps adds scriptlet requirements (Requires(post): systemd and
// the like) to an rpm that nfpm built: nfpm 2.45, the last version the
// module proxy serves with all its modules, cannot write them. It rewrites
// the main header's requirement lists, recomputes the digests of the
// signature header, and replaces the file atomically. Signed packages are
// refused: add requirements before signing.
//
//	rpmdeps FILE.rpm CONTEXT[,CONTEXT...]:NAME...
//	rpmdeps sitectl.rpm post:systemd preun:systemd postun:systemd post,interp:/bin/sh
//
// CONTEXT is interp, pre, post, preun or postun, as in a spec file's
// Requires(post,interp): NAME.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "rpmdeps: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: rpmdeps FILE.rpm CONTEXT:NAME [CONTEXT:NAME ...]")
	}
	var deps []dep
	for _, a := range args[1:] {
		d, err := parseDep(a)
		if err != nil {
			return err
		}
		deps = append(deps, d)
	}
	path := args[0]
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Size() > 1<<30 {
		return fmt.Errorf("%s is not a regular file of at most 1 GiB", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := rewrite(b, deps)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rpmdeps-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// rewrite returns the package b with deps added to its requirements.
func rewrite(b []byte, deps []dep) ([]byte, error) {
	f, err := parseRPM(b)
	if err != nil {
		return nil, err
	}
	mainHdr, err := addRequires(f.main, deps)
	if err != nil {
		return nil, err
	}
	if err := f.resign(mainHdr); err != nil {
		return nil, err
	}
	return f.bytes(), nil
}
