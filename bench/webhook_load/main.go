// Command webhook_load sends webhooks to the ingest service at a constant rate (an open
// loop) with fasthttp's client, and prints one JSON summary of what was accepted and how
// long each webhook took from when it fell due (ADR 0261).
//
// bench/ingest.py builds it on demand and drives it. The webhooks (distinct, signed) are
// written by the bench, one JSON object per line ({"path", "headers", "body"} with a
// base64 body), so this program only sends them, in order. With -rate 0 it is a closed
// loop instead: each of -connections sends its next webhook when the last is answered.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
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
	timeout := flag.Duration("timeout", 60*time.Second, "per webhook")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the load here")
	procs := flag.Int("procs", 1, "GOMAXPROCS: one keeps every hand-over on one thread")
	flag.Parse()
	// Most of a webhook's cost here is its system calls; with one P the goroutines hand
	// over to each other on one thread, without the futex wake-ups and idle spinning of
	// several (ADR 0261 measures it), and the service keeps the other core.
	runtime.GOMAXPROCS(*procs)

	webhooks, err := readWebhooks(*webhooksFile)
	if err == nil && *cpuProfile != "" {
		var profile *os.File
		if profile, err = os.Create(*cpuProfile); err == nil {
			err = pprof.StartCPUProfile(profile)
			defer pprof.StopCPUProfile()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "webhook_load:", err)
		os.Exit(2)
	}
	load := newLoad(webhooks, strings.Split(*addrs, ","), *connections, *timeout)
	fmt.Println(toJSON(load.run(*rate, *duration)))
}

func readWebhooks(path string) ([]webhook, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var webhooks []webhook
	lines := bufio.NewScanner(file)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	for lines.Scan() {
		var w webhook
		if err := json.Unmarshal(lines.Bytes(), &w); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		webhooks = append(webhooks, w)
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	if len(webhooks) == 0 {
		return nil, fmt.Errorf("no webhooks in %s", path)
	}
	return webhooks, nil
}

// load sends its webhooks in order (round again if it runs out). Each worker is one
// connection to one of the servers (worker n to server n mod len), so the pool spreads
// over the servers as bench/ingest.py's Python pool does, and a webhook goes to whichever
// worker is free first, whatever its server.
type load struct {
	webhooks []webhook
	clients  []*fasthttp.HostClient
	workers  int
	next     atomic.Int64
}

func newLoad(webhooks []webhook, addrs []string, connections int, timeout time.Duration) *load {
	clients := make([]*fasthttp.HostClient, len(addrs))
	for n, addr := range addrs {
		clients[n] = &fasthttp.HostClient{
			Addr:         addr,
			MaxConns:     connections,
			ReadTimeout:  timeout,
			WriteTimeout: timeout,
			// The same headers as the Python generator's requests: each is a callback
			// into Python in the server.
			NoDefaultUserAgentHeader: true,
		}
	}
	return &load{webhooks: webhooks, clients: clients, workers: connections}
}

// tally is one worker's outcomes, merged when the load ends (no sharing while it runs).
type tally struct {
	statuses  map[string]int
	errors    map[string]int
	latencies []time.Duration
	late      []time.Duration
	last      time.Time
}

// run sends the load and sums it up.
//
// In the open loop webhook k (from 0) falls due at start + k/rate whatever the answers
// do, and waits in a queue until a worker (a connection) is free (the one idle longest:
// a channel serves its waiting receivers in turn); its latency runs from
// when it fell due to its answer, so neither a late sender nor a wait for a free
// connection hides a slow server (coordinated omission). In the closed loop a worker
// sends whenever it is free and a latency runs from the send.
func (l *load) run(rate int, duration time.Duration) summary {
	tallies := make([]*tally, l.workers)
	l.connect()
	cpuBefore, sysBefore := cpuTime()
	start := time.Now()
	stop := start.Add(duration)
	var due chan time.Time
	if rate > 0 {
		due = make(chan time.Time, rate*int(duration/time.Second+1)+1)
	}
	var workers sync.WaitGroup
	for n := range l.workers {
		tallies[n] = &tally{statuses: map[string]int{}, errors: map[string]int{}}
		client := l.clients[n%len(l.clients)]
		workers.Go(func() { l.work(client, tallies[n], due, stop) })
	}
	if rate > 0 {
		pace(due, start, stop, time.Second/time.Duration(rate))
	}
	workers.Wait()
	cpuAfter, sysAfter := cpuTime()
	out := l.sum(tallies, start)
	out.CPUSeconds, out.SysSeconds = cpuAfter-cpuBefore, sysAfter-sysBefore
	return out
}

// connect opens every worker's connection before the load starts (as the Python
// generator does), with one GET /healthz each, all at once so that each needs its own
// connection; the answers are not counted.
func (l *load) connect() {
	var opening sync.WaitGroup
	for n := range l.workers {
		client := l.clients[n%len(l.clients)]
		opening.Go(func() {
			status, _, err := client.Get(nil, "http://"+client.Addr+"/healthz")
			if err != nil || status != fasthttp.StatusOK {
				fmt.Fprintln(os.Stderr, "webhook_load: opening a connection:", status, err)
			}
		})
	}
	opening.Wait()
}

// pace puts each webhook's due time on the queue when it falls due, until stop.
func pace(due chan<- time.Time, start, stop time.Time, interval time.Duration) {
	defer close(due)
	next := start
	for next.Before(stop) {
		now := time.Now()
		for ; !next.After(now) && next.Before(stop); next = next.Add(interval) {
			due <- next
		}
		time.Sleep(next.Sub(time.Now()))
	}
}

// work sends webhooks as they fall due on due (or, with no queue, back to back until
// stop) and tallies each answer.
func (l *load) work(client *fasthttp.HostClient, t *tally, due <-chan time.Time, stop time.Time) {
	request, response := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(request)
	defer fasthttp.ReleaseResponse(response)
	for {
		var dueAt time.Time
		if due != nil {
			var open bool
			if dueAt, open = <-due; !open {
				return
			}
		} else if dueAt = time.Now(); !dueAt.Before(stop) {
			return
		}
		w := &l.webhooks[int(l.next.Add(1)-1)%len(l.webhooks)]
		request.Reset()
		request.SetRequestURI(w.Path)
		request.SetHost(client.Addr)
		request.Header.SetMethod(fasthttp.MethodPost)
		for name, value := range w.Headers {
			request.Header.Set(name, value)
		}
		request.SetBodyRaw(w.Body)
		sent := time.Now()
		err := client.Do(request, response)
		answered := time.Now()
		t.last = answered
		if err != nil {
			t.errors[err.Error()]++
			continue
		}
		code := response.StatusCode()
		t.statuses[strconv.Itoa(code)]++
		if code >= 200 && code < 300 {
			t.latencies = append(t.latencies, answered.Sub(dueAt))
			t.late = append(t.late, sent.Sub(dueAt))
		}
	}
}

func (l *load) sum(tallies []*tally, start time.Time) summary {
	out := summary{Statuses: map[string]int{}, Errors: map[string]int{}}
	var latencies, late []time.Duration
	end := start
	for _, t := range tallies {
		for code, count := range t.statuses {
			out.Statuses[code] += count
			out.Sent += count
		}
		for message, count := range t.errors {
			out.Errors[message] += count
			out.Sent += count
		}
		latencies = append(latencies, t.latencies...)
		late = append(late, t.late...)
		if t.last.After(end) {
			end = t.last
		}
	}
	out.Accepted = len(latencies)
	out.Seconds = end.Sub(start).Seconds()
	out.P50Ms, out.P99Ms, out.MaxMs = quantile(latencies, 0.5), quantile(latencies, 0.99), quantile(latencies, 1)
	out.LateP99Ms = quantile(late, 0.99)
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
