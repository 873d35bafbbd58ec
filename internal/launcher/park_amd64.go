package launcher

// futexSyscall is where the other threads of a worker wait for its main
// thread; the main thread itself is not parked in it (it may be on its way
// out of a lock taken around accept()).
const futexSyscall = 202

// waitSyscalls are the x86-64 system calls in which a thread waits without
// holding a connection it has just accepted. accept and accept4 are not
// among them: a thread stopped on its way out of accept() may carry a
// connection. A worker busy with a request may well be parked too (in a
// sleep, say): a graceful stop lets it finish that request.
var waitSyscalls = map[int]bool{
	7:   true, // poll
	23:  true, // select
	34:  true, // pause
	35:  true, // nanosleep
	61:  true, // wait4
	130: true, // rt_sigsuspend
	230: true, // clock_nanosleep
	232: true, // epoll_wait
	270: true, // pselect6
	271: true, // ppoll
	281: true, // epoll_pwait
	441: true, // epoll_pwait2
}
