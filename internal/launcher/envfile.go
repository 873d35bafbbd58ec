package launcher

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// ParseEnvFile reads an environment file as systemd's EnvironmentFile=
// does for the files sitectl writes: KEY=VALUE lines, values optionally in
// double quotes with \" \\ \` \$ escapes, # comments, blank lines.
func ParseEnvFile(data []byte) ([][2]string, error) {
	var out [][2]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d is not KEY=VALUE", n)
		}
		if strings.HasPrefix(v, `"`) {
			if len(v) < 2 || !strings.HasSuffix(v, `"`) {
				return nil, fmt.Errorf("line %d: unterminated quote", n)
			}
			var b strings.Builder
			inner := v[1 : len(v)-1]
			for i := 0; i < len(inner); i++ {
				if inner[i] == '\\' && i+1 < len(inner) {
					i++
				}
				b.WriteByte(inner[i])
			}
			v = b.String()
		}
		out = append(out, [2]string{k, v})
	}
	return out, sc.Err()
}
