//go:build !amd64

package launcher

// waitSyscalls is empty where the system call numbers are not listed:
// workers are not parked, the old generation is simply told to drain.
var waitSyscalls = map[int]bool{}

// futexSyscall is never looked up where waitSyscalls is empty.
const futexSyscall = -1
