// Package hugeheap asks the kernel to back the part of the Go heap that a
// large listing will fill with transparent huge pages.
//
// Listing 10,000 sites touches about 60 MB of fresh heap. With 4 KiB pages
// that is some 15,000 page faults, and on a virtual machine each one costs
// more than the work it makes room for: on the project's test machine,
// sitectl list --json of 10,000 sites spent 0.26 s of its 0.56 s of CPU
// faulting (docs/scale.md). The Go runtime does not ask for huge pages for
// its heap, and Debian's default (transparent_hugepage=madvise) gives them
// only to memory that asks. Advise asks for a region the heap is about to
// use: it allocates a large block, which the runtime maps from fresh
// address space and does not touch, lets it go at once, and advises the
// mapping MADV_HUGEPAGE. The runtime hands those pages out again for the
// allocations that follow, and the kernel then faults them in 2 MiB at a
// time. The advice stays on the mapping for the life of the process.
//
// It is for short-lived commands that are about to allocate tens of
// megabytes; for a small one the extra mapping and collection cost more
// than they save. Where the kernel has no transparent huge pages, or they
// are off, the advice does nothing.
package hugeheap

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of a transparent huge page on amd64 and arm64 with
// 4 KiB base pages.
const hugePage = 2 << 20

// Advise reserves size bytes of the heap for the allocations that follow
// and asks for them to be backed by huge pages. It returns the region it
// advised ([lo, hi), empty when size is under a huge page) and madvise's
// error, which leaves the heap as it would have been.
func Advise(size int) (lo, hi uintptr, err error) {
	lo, hi = reserve(size)
	// The block is unreachable: a collection returns its pages to the
	// heap's free pages, still mapped, for the allocations to come.
	runtime.GC()
	lo = (lo + hugePage - 1) &^ (hugePage - 1)
	hi &^= hugePage - 1
	if hi <= lo {
		return 0, 0, nil
	}
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_HUGEPAGE); e != 0 {
		return lo, hi, e
	}
	return lo, hi, nil
}

// reserve allocates size bytes and returns where they are, without
// keeping them: a block this large comes from fresh address space that
// the runtime maps but does not write to.
//
//go:noinline
func reserve(size int) (lo, hi uintptr) {
	b := make([]byte, size)
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p, p + uintptr(size)
}
