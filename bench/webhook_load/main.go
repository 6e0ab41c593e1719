// Command webhook_load sends webhooks to the ingest service at a constant rate (an open
// loop) and prints one JSON summary of what was accepted and how long each webhook took
// from when it fell due (ADR 0261).
//
// bench/ingest.py builds it on demand and drives it. The webhooks (distinct, signed) are
// written by the bench, one JSON object per line ({"path", "headers", "body"} with a
// base64 body), so this program only sends them, in order. With -rate 0 it is a closed
// loop instead: each of -connections sends its next webhook when the last is answered.
//
// It is one thread around epoll (as the Python generator is one asyncio loop): a write
// per webhook, a read per answer, one epoll wait for all that is ready. Go's own network
// poller and HTTP clients (net/http, fasthttp) cost two to three times the system calls
// and thread wake-ups per webhook (ADR 0261), on cores the service needs. The system
// calls are raw (the runtime is not told), so its monitor thread does not hand the
// processor to another thread during each one, and the collector is off while the
// load runs: nothing else in the process needs to run meanwhile. (bench/ingest.py runs
// it with GODEBUG=asyncpreemptoff=1: with one goroutine there is nothing to preempt it
// for, and the preemption signals would interrupt the epoll wait 100 times a second.)
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// webhook is one line of the -webhooks file.
type webhook struct {
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"body"` // base64 in the file
}

// summary is what bench/ingest.py reads back: counts, the latencies' quantiles and the
// generator's own CPU time during the load.
type summary struct {
	Sent       int            `json:"sent"`
	Accepted   int            `json:"accepted"`
	Statuses   map[string]int `json:"statuses"`
	Errors     map[string]int `json:"errors"`
	P50Ms      float64        `json:"p50_ms"`
	P99Ms      float64        `json:"p99_ms"`
	MaxMs      float64        `json:"max_ms"`
	LateP99Ms  float64        `json:"late_p99_ms"`
	Seconds    float64        `json:"seconds"`
	CPUSeconds float64        `json:"cpu_seconds"`
	SysSeconds float64        `json:"system_cpu_seconds"` // of CPUSeconds, in the kernel
}

func main() {
	webhooksFile := flag.String("webhooks", "", "the webhooks to send, one JSON object per line")
	addrs := flag.String("addrs", "127.0.0.1:8080", "host:port of each server, comma-separated")
	rate := flag.Int("rate", 0, "webhooks per second; 0: a closed loop over -connections")
	duration := flag.Duration("duration", 8*time.Second, "how long webhooks fall due")
	connections := flag.Int("connections", 256, "connections (each one webhook at a time)")
	timeout := flag.Duration("timeout", 60*time.Second, "how long the last answers may take")
	flag.Parse()
	runtime.LockOSThread() // the loop below is the program: one thread
	runtime.GOMAXPROCS(1)

	servers := strings.Split(*addrs, ",")
	requests, err := readRequests(*webhooksFile, servers[0])
	var l *load
	if err == nil {
		l, err = newLoad(requests, servers, *connections)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "webhook_load:", err)
		os.Exit(2)
	}
	debug.SetGCPercent(-1) // a few slices grow during the load; no collection stalls it
	fmt.Println(toJSON(l.run(*rate, *duration, *timeout)))
}

// readRequests reads the webhooks as raw HTTP/1.1 requests, ready to write.
func readRequests(path, host string) ([][]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var requests [][]byte
	lines := bufio.NewScanner(file)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	for lines.Scan() {
		var w webhook
		if err := json.Unmarshal(lines.Bytes(), &w); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var request bytes.Buffer
		fmt.Fprintf(&request, "POST %s HTTP/1.1\r\nHost: %s\r\n", w.Path, host)
		names := make([]string, 0, len(w.Headers))
		for name := range w.Headers {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(&request, "%s: %s\r\n", name, w.Headers[name])
		}
		fmt.Fprintf(&request, "Content-Length: %d\r\n\r\n", len(w.Body))
		request.Write(w.Body)
		requests = append(requests, request.Bytes())
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	if len(requests) == 0 {
		return nil, fmt.Errorf("no webhooks in %s", path)
	}
	return requests, nil
}

// connection is one keep-alive connection of the pool: one webhook at a time.
type connection struct {
	fd     int
	due    time.Time // when its webhook fell due (the send, in a closed loop)
	busy   bool
	buffer []byte // an answer's bytes read so far
}

// load is the pool, the webhooks, and what came back.
type load struct {
	requests  [][]byte
	pool      map[int]*connection // by file descriptor
	idle      []*connection       // first in, first out: the one idle longest first
	backlog   []time.Time         // fell due while every connection was busy
	next      int                 // the next request to send
	epoll     int
	statuses  map[string]int
	errors    map[string]int
	latencies []time.Duration
	late      []time.Duration
	sent      int
	last      time.Time
}

// newLoad opens the pool (connection n to server n mod len) before any webhook falls due.
func newLoad(requests [][]byte, servers []string, connections int) (*load, error) {
	epoll, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &load{
		requests: requests,
		pool:     map[int]*connection{},
		epoll:    epoll,
		statuses: map[string]int{},
		errors:   map[string]int{},
	}
	for n := range connections {
		fd, err := dial(servers[n%len(servers)])
		if err != nil {
			return nil, err
		}
		event := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
		if err := syscall.EpollCtl(epoll, syscall.EPOLL_CTL_ADD, fd, &event); err != nil {
			return nil, err
		}
		c := &connection{fd: fd}
		l.pool[fd] = c
		l.idle = append(l.idle, c)
	}
	return l, nil
}

// dial connects a non-blocking TCP socket with Nagle's delay off (as asyncio's are).
func dial(server string) (int, error) {
	address, err := net.ResolveTCPAddr("tcp4", server)
	if err != nil {
		return -1, err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	sockaddr := &syscall.SockaddrInet4{Port: address.Port}
	copy(sockaddr.Addr[:], address.IP.To4())
	if err := syscall.Connect(fd, sockaddr); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", server, err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
		return -1, err
	}
	return fd, syscall.SetNonblock(fd, true)
}

// run sends the load and sums it up.
//
// In the open loop webhook k (from 0) falls due at start + k/rate whatever the answers
// do; it goes on the connection idle longest, or, when every connection is busy, on the
// first to come free, in the order they fell due. Its latency runs from when it fell
// due to its answer, so neither a late sender nor a wait for a free connection hides a
// slow server (coordinated omission). In the closed loop every free connection sends at
// once and a latency runs from the send.
func (l *load) run(rate int, duration, timeout time.Duration) summary {
	cpuBefore, sysBefore := cpuTime()
	start := time.Now()
	stop := start.Add(duration)
	interval := time.Duration(0)
	if rate > 0 {
		interval = time.Second / time.Duration(rate)
	}
	due := start
	events := make([]syscall.EpollEvent, 256)
	buffer := make([]byte, 64<<10)
	for len(l.pool) > 0 {
		now := time.Now()
		if rate > 0 {
			for ; !due.After(now) && due.Before(stop); due = due.Add(interval) {
				l.backlog = append(l.backlog, due)
			}
		} else if now.Before(stop) {
			for range len(l.idle) {
				l.backlog = append(l.backlog, now)
			}
		}
		l.dispatch(now)
		wait := 0 * time.Millisecond
		switch {
		case rate > 0 && due.Before(stop):
			wait = due.Sub(now)
		case rate == 0 && now.Before(stop):
			wait = stop.Sub(now)
		case len(l.idle) == len(l.pool) && len(l.backlog) == 0:
			return l.sum(start, cpuBefore, sysBefore) // everything due was answered
		case now.After(stop.Add(timeout)):
			for _, c := range l.pool {
				if c.busy {
					l.errors["no answer within the timeout"]++
				}
			}
			return l.sum(start, cpuBefore, sysBefore)
		default:
			wait = stop.Add(timeout).Sub(now)
		}
		// epoll counts in whole milliseconds: round up, so a webhook is never sent early.
		ready, err := epollWait(l.epoll, events, int((wait+time.Millisecond-1)/time.Millisecond))
		if err != nil && !errors.Is(err, syscall.EINTR) {
			fmt.Fprintln(os.Stderr, "webhook_load: epoll:", err)
			os.Exit(1)
		}
		for _, event := range events[:max(ready, 0)] {
			l.receive(l.pool[int(event.Fd)], buffer)
		}
	}
	return l.sum(start, cpuBefore, sysBefore)
}

// dispatch writes what fell due on the idle connections, longest idle first.
func (l *load) dispatch(now time.Time) {
	for len(l.backlog) > 0 && len(l.idle) > 0 {
		c, due := l.idle[0], l.backlog[0]
		l.idle, l.backlog = l.idle[1:], l.backlog[1:]
		request := l.requests[l.next%len(l.requests)]
		l.next++
		l.sent++
		written, err := rawWrite(c.fd, request)
		if err != nil || written != len(request) { // an idle connection's buffer is empty
			c.busy = true // this webhook is lost with the connection
			l.fail(c, fmt.Sprintf("write: %d of %d bytes, %v", written, len(request), err))
			continue
		}
		c.busy, c.due = true, due
		l.late = append(l.late, now.Sub(due))
	}
}

// receive reads what the server sent on c and tallies each whole answer.
func (l *load) receive(c *connection, buffer []byte) {
	if c == nil {
		return
	}
	read, err := rawRead(c.fd, buffer)
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
		return
	}
	if err != nil || read == 0 {
		l.fail(c, fmt.Sprintf("connection closed by the server (%v)", err))
		return
	}
	c.buffer = append(c.buffer, buffer[:read]...)
	for {
		status, size := answer(c.buffer)
		if size == 0 {
			return
		}
		now := time.Now()
		c.buffer = c.buffer[size:]
		if !c.busy {
			c.busy = true // counted: an answer to nothing is a broken exchange
			l.fail(c, "an answer to nothing")
			return
		}
		l.last = now
		l.statuses[strconv.Itoa(status)]++
		if status >= 200 && status < 300 {
			l.latencies = append(l.latencies, now.Sub(c.due))
		}
		c.busy = false
		l.idle = append(l.idle, c)
	}
}

// rawRead, rawWrite and epollWait are the system calls of the loop, made without telling
// the runtime (see the package comment).
func rawRead(fd int, buffer []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buffer[0])), uintptr(len(buffer)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

func rawWrite(fd int, data []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

func epollWait(epoll int, events []syscall.EpollEvent, milliseconds int) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epoll), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(milliseconds), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// fail drops a connection from the pool, counting its webhook, if it had one, as
// unanswered (an idle connection the server closed, e.g. after its keep-alive timeout,
// is no failure).
func (l *load) fail(c *connection, why string) {
	if c.busy || len(c.buffer) > 0 {
		l.errors[why]++
	}
	syscall.Close(c.fd)
	delete(l.pool, c.fd)
	l.idle = slices.DeleteFunc(l.idle, func(idle *connection) bool { return idle == c })
}

// answer is the status and length of the whole HTTP answer at the start of data, or a
// length of 0 while it is incomplete.
func answer(data []byte) (int, int) {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 12 {
		return 0, 0
	}
	head := bytes.ToLower(data[:end])
	length := 0
	if at := bytes.Index(head, []byte("\r\ncontent-length:")); at >= 0 {
		value, _, _ := bytes.Cut(head[at+17:], []byte("\r\n"))
		length, _ = strconv.Atoi(string(bytes.TrimSpace(value)))
	}
	if len(data) < end+4+length {
		return 0, 0
	}
	status, _ := strconv.Atoi(string(data[9:12]))
	return status, end + 4 + length
}

func (l *load) sum(start time.Time, cpuBefore, sysBefore float64) summary {
	cpuAfter, sysAfter := cpuTime()
	out := summary{
		Sent:       l.sent,
		Accepted:   len(l.latencies),
		Statuses:   l.statuses,
		Errors:     l.errors,
		CPUSeconds: cpuAfter - cpuBefore,
		SysSeconds: sysAfter - sysBefore,
	}
	if l.last.After(start) {
		out.Seconds = l.last.Sub(start).Seconds()
	}
	out.P50Ms, out.P99Ms, out.MaxMs = quantile(l.latencies, 0.5), quantile(l.latencies, 0.99), quantile(l.latencies, 1)
	out.LateP99Ms = quantile(l.late, 0.99)
	return out
}

// quantile in milliseconds, picked as bench/ingest.py's percentile picks it.
func quantile(values []time.Duration, q float64) float64 {
	if len(values) == 0 {
		return 0
	}
	slices.Sort(values)
	at := min(len(values)-1, int(q*float64(len(values))))
	return float64(values[at]) / float64(time.Millisecond)
}

// cpuTime is this process's CPU seconds so far: user and system, and system alone.
func cpuTime() (float64, float64) {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0, 0
	}
	seconds := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return seconds(usage.Utime) + seconds(usage.Stime), seconds(usage.Stime)
}

func toJSON(value summary) string {
	text, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	return string(text)
}
