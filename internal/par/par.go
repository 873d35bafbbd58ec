// Package par runs independent pieces of work on all CPUs: reading and
// parsing 10,000 site files, rendering their units, reading their state.
package par

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Each calls f(0) ... f(n-1), each exactly once, on as many goroutines as
// there are CPUs, and returns when all calls have returned. f must be safe
// to call concurrently; writing to the i-th element of a slice is.
func Each(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		}()
	}
	wg.Wait()
}
