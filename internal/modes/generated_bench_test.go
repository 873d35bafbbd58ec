package modes

import (
	"fmt"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
)

// BenchmarkWriteGenerated is the generator's record at every
// daemon-reload of a host with 10,000 sites that changed nothing: the
// record is encoded, with every site file's content, and compared with
// the one written before.
//
//	go test -run '^$' -bench WriteGenerated ./internal/modes
func BenchmarkWriteGenerated(b *testing.B) {
	st := Store{Dir: b.TempDir()}
	sites := make([]*site.Site, 10000)
	for i := range sites {
		name := fmt.Sprintf("s%05d", i)
		content := fmt.Sprintf("exec = [\"/usr/local/bin/webapp\"]\nreadiness = \"notify\"\n[[listen]]\naddress = \"127.0.0.1:%d\"\n", 10000+i)
		r := site.LoadBytes("/etc/sitectl/sites/"+name+".toml", name, []byte(content), nil)
		if len(r.Sites) != 1 {
			b.Fatal(r.Errors)
		}
		sites[i] = r.Sites[0]
	}
	if err := st.WriteGenerated(sites); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := st.WriteGenerated(sites); err != nil {
			b.Fatal(err)
		}
	}
}
