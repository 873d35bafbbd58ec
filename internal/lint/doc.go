// Package lint holds checks of sitectl's own source that go vet and
// staticcheck do not make: see its tests.
package lint
