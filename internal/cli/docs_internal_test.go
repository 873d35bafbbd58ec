package cli

import (
	"testing"

	"github.com/sitectl/sitectl/internal/site"
)

// TestSiteFileExampleIsValid checks the example of sitectl.toml(5).
func TestSiteFileExampleIsValid(t *testing.T) {
	if _, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte(siteFileExample)); err != nil {
		t.Errorf("the example of sitectl.toml(5) has mistakes:\n%v", err)
	}
}
