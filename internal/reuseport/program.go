package reuseport

import "golang.org/x/sys/unix"

// The kernel runs a reuseport group's classic BPF program for each new
// connection that finds the group (the SYN; for a SYN cookie, the final
// ACK), with the packet's data starting after the TCP header. The program's
// return value is an index into the group's array of sockets. A value
// outside the array makes the kernel pick a socket by hash, as if there
// were no program.

// skfNetOff is SKF_NET_OFF (-0x100000 as an unsigned 32-bit value): a load
// at this offset plus k reads byte k of the IP header.
const skfNetOff = 0xfff00000

// steerProgram sends every new connection to the member at index.
func steerProgram(index uint32) []unix.SockFilter {
	return []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: index}}
}

// probeProgram sends a connection from TCP source port port to the member
// at probe, and every other one to the member at others. It reads the IP
// version, finds the TCP header after an IPv4 header of any length or a
// fixed IPv6 header, and compares its source port. (Our own probes carry no
// IPv6 extension headers.)
func probeProgram(port uint16, probe, others uint32) []unix.SockFilter {
	return []unix.SockFilter{
		/* 0 */ {Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: skfNetOff}, // A = version, IHL
		/* 1 */ {Code: unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K, K: 4}, // A = version
		/* 2 */ {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 6, Jt: 2}, // IPv6: to 5
		/* 3 */ {Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: skfNetOff}, // X = 4*IHL
		/* 4 */ {Code: unix.BPF_JMP | unix.BPF_JA, K: 1}, // to 6
		/* 5 */ {Code: unix.BPF_LDX | unix.BPF_W | unix.BPF_IMM, K: 40}, // X = IPv6 header
		/* 6 */ {Code: unix.BPF_LD | unix.BPF_H | unix.BPF_IND, K: skfNetOff}, // A = source port
		/* 7 */ {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(port), Jf: 1},
		/* 8 */ {Code: unix.BPF_RET | unix.BPF_K, K: probe},
		/* 9 */ {Code: unix.BPF_RET | unix.BPF_K, K: others},
	}
}
