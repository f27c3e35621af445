package faults

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// faultProxy forwards TCP connections to a MySQL server and injects faults into them: cut ends
// every connection and refuses new ones until pass; hang stops forwarding in both directions
// (connections stay open, bytes wait) until pass. A watch pattern reports the first chunk from a
// client that contains it on hits (the chunk is still forwarded, or held while the proxy hangs); a
// watch without pattern reports the first chunk either way.
type faultProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu       sync.Mutex
	mode     string // "pass", "cut", "hang"
	resume   chan struct{}
	conns    map[net.Conn]bool
	watching bool
	pattern  [][]byte // every one of them in one chunk
	hits     chan struct{}
	cuts     int // connections ended by cut
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, ln: ln, target: target, mode: "pass", resume: make(chan struct{}), conns: map[net.Conn]bool{},
		hits: make(chan struct{}, 1)}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.set("cut")
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// set switches the mode: leaving hang lets the held bytes flow, entering cut ends every
// connection.
func (p *faultProxy) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "hang" && mode != "hang" {
		close(p.resume)
		p.resume = make(chan struct{})
	}
	p.mode = mode
	if mode == "cut" {
		for c := range p.conns {
			c.Close()
			p.cuts++
		}
		clear(p.conns)
	}
}

// watch reports on the returned channel the next client chunk containing every pattern, or with
// none the next chunk in either direction: a hang may catch no client chunk at all, when every
// connection had sent its statement before it and waits for the answer (held), and the
// connections opened meanwhile wait for the server's greeting (held) before they send anything.
// A chunk held by a hang before the watch began counts too: the held chunks are woken to look,
// or a hang that caught every connection's next chunk before the watch would never be seen.
func (p *faultProxy) watch(patterns ...string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watching, p.pattern = true, nil
	for _, s := range patterns {
		p.pattern = append(p.pattern, []byte(s))
	}
	p.hits = make(chan struct{}, 1)
	close(p.resume)
	p.resume = make(chan struct{})
	return p.hits
}

// gate reports chunk to the watch, then blocks while the proxy hangs; false means the connection
// must end (cut).
func (p *faultProxy) gate(chunk []byte, fromClient bool, conns ...net.Conn) bool {
	for {
		p.mu.Lock()
		if p.watching && (len(p.pattern) == 0 || fromClient && containsAll(chunk, p.pattern)) {
			p.watching = false
			p.hits <- struct{}{}
		}
		mode, resume := p.mode, p.resume
		open := true
		for _, c := range conns {
			open = open && p.conns[c]
		}
		p.mu.Unlock()
		switch {
		case !open || mode == "cut":
			return false
		case mode == "pass":
			return true
		}
		<-resume
	}
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refused := p.mode == "cut"
		p.mu.Unlock()
		if refused {
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns[client], p.conns[server] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.copy(server, client, true)
		go p.copy(client, server, false)
	}
}

// copy forwards from src to dst chunk by chunk, each through the gate.
func (p *faultProxy) copy(dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, src)
		delete(p.conns, dst)
		p.mu.Unlock()
		src.Close()
		dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate(buf[:n], fromClient, src, dst) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func containsAll(chunk []byte, patterns [][]byte) bool {
	for _, p := range patterns {
		if !bytes.Contains(chunk, p) {
			return false
		}
	}
	return true
}
