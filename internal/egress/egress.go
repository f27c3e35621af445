// Package egress guards the calls the platform makes to addresses its tenants choose (webhook
// endpoints): they reach the public internet only, never the platform's own network — its
// management and sandbox databases, its metrics address, a cloud provider's metadata service.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrNotPublic is the error of a connection refused because its address is not public.
var ErrNotPublic = errors.New("the address is not on the public internet")

// notPublic are the ranges of special-purpose addresses (RFC 6890 and its successors) that
// netip's own predicates do not cover: shared address space (carrier-grade NAT), IETF protocol
// assignments, benchmarking, documentation, the IPv4 "this network" and reserved blocks, and
// NAT64 (whose addresses embed any IPv4 one, the private ones included).
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// Public reports whether ip is an address of the public internet: a global unicast address, not
// private, loopback, link-local (169.254.169.254, the metadata service of most clouds, is one),
// multicast or any special-purpose range.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Client returns an HTTP client for tenants' endpoints: each request ends after timeout, a
// redirect is an answer (never followed: it could point anywhere), no proxy from the environment
// is used, and a connection goes only to a public address — checked on the address the dialer
// connects to, after name resolution, so a name that resolves to 127.0.0.1 (or one re-pointed
// between a check and the call) does not get through. allowPrivate lifts that last check, for a
// development machine whose receivers listen on localhost.
func Client(timeout time.Duration, allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: timeout}
	if !allowPrivate {
		dialer.Control = refuseNotPublic
	}
	transport := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Timeout: timeout, Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// refuseNotPublic is a dialer's Control: it runs once the address is resolved, before connecting.
func refuseNotPublic(_, address string, _ syscall.RawConn) error {
	addrPort, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrNotPublic, address)
	}
	if !Public(addrPort.Addr()) {
		return fmt.Errorf("%w: %s", ErrNotPublic, addrPort.Addr())
	}
	return nil
}
