// Package dialer connects to TCP addresses for sitectl's state service,
// which has no network of its own (PrivateNetwork=yes keeps its sandbox
// tight: it runs as root). When the service verifies a site it changed
// for a deployer, it asks sitectl-dial.service (sitectl dial-server,
// unprivileged, with the host's network) to connect to the site's TCP
// listener; the connection comes back over the unix socket
// (SCM_RIGHTS), and the service speaks HTTP over it itself.
//
// The protocol, owned here: the client sends one line "tcp ADDRESS
// TIMEOUT_MS", ADDRESS an IP address and port ("127.0.0.1:8080",
// "[::1]:8080"); the server answers one line, "ok" with the connection
// attached, or "failed: REASON". One request per connection.
// /run/sitectl/dial.sock is root's alone (SocketMode=0600).
package dialer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Limits of the protocol.
const (
	maxRequest     = 256
	requestTimeout = 10 * time.Second
	// MaxTimeout bounds one connect.
	MaxTimeout = 60 * time.Second
)

// request is a parsed request line.
type request struct {
	addr    netip.AddrPort
	timeout time.Duration
}

// parseRequest reads "tcp ADDRESS TIMEOUT_MS".
func parseRequest(line string) (request, error) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "tcp" {
		return request{}, errors.New("not a request: want tcp ADDRESS TIMEOUT_MS")
	}
	ap, err := netip.ParseAddrPort(f[1])
	if err != nil || ap.Addr().Zone() != "" || ap.Port() == 0 {
		return request{}, fmt.Errorf("%q is not an IP address and port", f[1])
	}
	ms, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || ms <= 0 || time.Duration(ms)*time.Millisecond > MaxTimeout {
		return request{}, fmt.Errorf("timeout %q is not between 1 ms and %s", f[2], MaxTimeout)
	}
	return request{addr: ap, timeout: time.Duration(ms) * time.Millisecond}, nil
}

// Serve answers requests on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, logf func(format string, args ...any)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("cannot accept connections: %w", err)
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := answer(ctx, uc); err != nil {
				logf("%v", err)
			}
		}()
	}
}

// answer answers one request on c.
func answer(ctx context.Context, c *net.UnixConn) error {
	defer c.Close()
	c.SetDeadline(time.Now().Add(requestTimeout + MaxTimeout))
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	line, err := bufio.NewReaderSize(io.LimitReader(c, maxRequest), maxRequest).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no request: %w", err)
	}
	req, err := parseRequest(line)
	if err != nil {
		io.WriteString(c, "failed: "+err.Error()+"\n")
		return err
	}
	d := net.Dialer{Timeout: req.timeout}
	conn, err := d.DialContext(ctx, "tcp", req.addr.String())
	if err != nil {
		_, werr := io.WriteString(c, "failed: "+strings.ReplaceAll(err.Error(), "\n", " ")+"\n")
		return werr // a refused connection is the probe's business, not the journal's
	}
	defer conn.Close()
	f, err := conn.(*net.TCPConn).File()
	if err != nil {
		io.WriteString(c, "failed: "+err.Error()+"\n")
		return err
	}
	defer f.Close()
	_, _, err = c.WriteMsgUnix([]byte("ok\n"), syscall.UnixRights(int(f.Fd())), nil)
	return err
}

// Dial asks the server on socket to connect to address (an IP address and
// port) and returns the connection; ctx bounds it all.
func Dial(ctx context.Context, socket, address string) (net.Conn, error) {
	timeout := MaxTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(time.Until(d), MaxTimeout)
	}
	if timeout < time.Millisecond {
		return nil, context.DeadlineExceeded
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("cannot reach sitectl's dialer at %s: %w", socket, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	c.SetDeadline(time.Now().Add(timeout + requestTimeout))
	if _, err := fmt.Fprintf(c, "tcp %s %d\n", address, timeout.Milliseconds()); err != nil {
		return nil, fmt.Errorf("cannot ask sitectl's dialer: %w", err)
	}
	return receive(c.(*net.UnixConn), ctx)
}

// receive reads the answer line and the connection that comes with it.
func receive(c *net.UnixConn, ctx context.Context) (net.Conn, error) {
	buf := make([]byte, 512)
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("no answer from sitectl's dialer: %w", err)
	}
	fds, err := rights(oob[:oobn])
	if err != nil {
		return nil, err
	}
	answer := strings.TrimSpace(string(buf[:n]))
	if answer != "ok" || len(fds) != 1 {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return nil, errors.New(strings.TrimPrefix(answer, "failed: "))
	}
	f := os.NewFile(uintptr(fds[0]), "dialed")
	defer f.Close()
	return net.FileConn(f)
}

// rights are the file descriptors of a control message.
func rights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return nil, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}
