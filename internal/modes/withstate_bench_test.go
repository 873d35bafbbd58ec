package modes

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWithState: the read of the directory of 10,000 sites' states
// that list makes once.
func BenchmarkWithState(b *testing.B) {
	st := Store{Dir: b.TempDir()}
	for i := range 10000 {
		if err := os.MkdirAll(filepath.Dir(st.EnvPath(fmt.Sprintf("s-%05d", i))), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if names, ok := st.WithState(); !ok || len(names) != 10000 {
			b.Fatal(len(names), ok)
		}
	}
}
