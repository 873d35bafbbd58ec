package modes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/site"
)

// The record of generated listeners says which listeners the generator
// gave each site's units at its last run. It is what makes a site that
// listens keep its listeners when another site file claims them: the
// last good copy says what a site's service started with, and a site
// whose socket listens but whose service never started (no request came
// yet) has none. Without the record, the later of two such sites by name
// lost its units at the daemon-reload after someone copied or edited
// another file onto its listener, and systemd closed its socket.

// generatedVersion is the format of the record.
const generatedVersion = 1

// maxGenerated bounds the record: about 80 bytes a listener, so 64 MiB
// is far beyond any host's sites.
const maxGenerated = 64 << 20

// generatedFile is the record as written: the listeners of each site,
// by site name, as their address (TCP) or path (unix).
type generatedFile struct {
	Version int                    `json:"version"`
	Sites   map[string][]generated `json:"sites"`
	// Sources is, by site name, the content of the site file whose units
	// the generator wrote: what a site that never started (and so has no
	// last good copy, which prepare keeps at each start) runs on when its
	// file gets a mistake (GeneratedSources). A site whose units came
	// from a copy keeps the content recorded before. Left out by a
	// sitectl that did not record it, which this one reads as none.
	Sources map[string]string `json:"sources,omitempty"`
}

// maxSources bounds the content the record keeps of site files, well
// inside maxGenerated: the sites beyond it, by name, have none kept.
const maxSources = 32 << 20

type generated struct {
	Kind     string `json:"kind"` // "tcp" or "unix"
	Endpoint string `json:"endpoint"`
}

// EncodeGenerated is the record of the listeners of sites, whose units
// the generator writes, and of sources, the content of their files by
// site name.
func EncodeGenerated(sites []*site.Site, sources map[string]string) []byte {
	f := generatedFile{Version: generatedVersion, Sites: make(map[string][]generated, len(sites)), Sources: sources}
	for _, s := range sites {
		ls := make([]generated, 0, len(s.Listeners))
		for _, l := range s.Listeners {
			kind := "tcp"
			if l.Kind == site.Unix {
				kind = "unix"
			}
			ls = append(ls, generated{Kind: kind, Endpoint: l.Endpoint()})
		}
		f.Sites[s.Name] = ls
	}
	b, _ := json.Marshal(f) // maps of strings: it cannot fail
	return append(b, '\n')
}

// decodeGeneratedFile reads a record as it is written.
func decodeGeneratedFile(data []byte) (generatedFile, error) {
	var f generatedFile
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("the record of generated listeners is damaged: %w", err)
	}
	if f.Version != generatedVersion {
		return f, fmt.Errorf("the record of generated listeners has version %d, not %d", f.Version, generatedVersion)
	}
	return f, nil
}

// DecodeGenerated reads a record: the listeners of each site.
func DecodeGenerated(data []byte) (map[string][]site.Listener, error) {
	f, err := decodeGeneratedFile(data)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]site.Listener, len(f.Sites))
	for name, gs := range f.Sites {
		ls := make([]site.Listener, 0, len(gs))
		for _, g := range gs {
			switch g.Kind {
			case "tcp":
				ls = append(ls, site.Listener{Kind: site.TCP, Address: g.Endpoint})
			case "unix":
				ls = append(ls, site.Listener{Kind: site.Unix, Path: g.Endpoint})
			default:
				return nil, fmt.Errorf("the record of generated listeners has a listener of kind %q", g.Kind)
			}
		}
		out[name] = ls
	}
	return out, nil
}

// WriteGenerated records the listeners of sites, whose units the
// generator wrote, unless the record says that already: the generator
// runs at every daemon-reload, and most change nothing. The state
// directory is created when its parent exists, as on a host where no
// site has started yet; a state directory on a file system not mounted
// yet is left alone.
//
// With the listeners it records the content of each site's file (Source)
// whose units were generated from it, and keeps what it recorded before
// for a site whose units come from a last good copy.
func (st Store) WriteGenerated(sites []*site.Site) error {
	path := st.paths().GeneratedListenersFile()
	old, _, oldErr := readBounded(path, maxGenerated)
	data := EncodeGenerated(sites, st.sources(sites, old, oldErr))
	if oldErr == nil && bytes.Equal(old, data) {
		return nil
	}
	if _, err := os.Stat(st.Dir); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.MkdirAll(st.Dir, DirMode); err != nil {
			return fmt.Errorf("cannot record the generated listeners: %w", err)
		}
	}
	if err := atomicfile.Write(path, data, FileMode); err != nil {
		return fmt.Errorf("cannot record the generated listeners: %w", err)
	}
	return nil
}

// sources is the content WriteGenerated records of sites' files: each
// site's own Source, or for a site whose units come from its last good
// copy what the record before, data (unless readErr), kept; at most
// maxSources bytes, by name.
func (st Store) sources(sites []*site.Site, data []byte, readErr error) map[string]string {
	byName := sites
	if !slices.IsSortedFunc(sites, bySiteName) {
		byName = slices.SortedFunc(slices.Values(sites), bySiteName)
	}
	out := make(map[string]string, len(sites))
	var before map[string]string
	decoded := false
	total := 0
	for _, s := range byName {
		var src string
		ok := s.Source != nil && s.File != st.paths().LastGoodFile(s.Name)
		if ok {
			src = string(s.Source)
		} else {
			if !decoded && readErr == nil {
				f, _ := decodeGeneratedFile(data)
				before, decoded = f.Sources, true
			}
			src, ok = before[s.Name]
		}
		if !ok || total+len(src) > maxSources {
			continue
		}
		out[s.Name] = src
		total += len(src)
	}
	return out
}

func bySiteName(a, b *site.Site) int { return strings.Compare(a.Name, b.Name) }

// GeneratedSources is the content of each site's file as the generator
// last generated its units from it (the record's Sources), by site name;
// none when there is no record.
func (st Store) GeneratedSources() (map[string]string, error) {
	data, _, err := readBounded(st.paths().GeneratedListenersFile(), maxGenerated)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := decodeGeneratedFile(data)
	return f.Sources, err
}

// readGenerated reads the record; none is an empty one.
func (st Store) readGenerated() (map[string][]site.Listener, error) {
	data, _, err := readBounded(st.paths().GeneratedListenersFile(), maxGenerated)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return DecodeGenerated(data)
}

// Holders is site.Held of this state directory, as the generator decides
// which of two sites claiming a listener keeps it: site s holds each of
// ls if its units had them at the generator's last run (the record of
// generated listeners), or if the last good copy of its file, which
// prepare keeps at each start, declares them (Held). The record is read
// once, when the first collision asks.
func (st Store) Holders() site.Held {
	var once sync.Once
	var rec map[string][]site.Listener
	return func(s *site.Site, ls []site.Listener) bool {
		once.Do(func() { rec, _ = st.readGenerated() })
		if had, ok := rec[s.Name]; ok && declaresAll(had, ls) {
			return true
		}
		return st.Held(s, ls)
	}
}

// declaresAll tells whether each of ls is among had.
func declaresAll(had, ls []site.Listener) bool {
	for _, l := range ls {
		if !slices.ContainsFunc(had, func(g site.Listener) bool { return site.SameListener(g, l) }) {
			return false
		}
	}
	return true
}
