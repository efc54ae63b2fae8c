package loopback

import (
	"net"
	"sync"
	"testing"
)

// Serve listens on 127.0.0.1:0 and runs handle on each connection it accepts, closing the
// connection when handle returns, until the test ends; the cleanup closes the listener and waits
// for every handler, which must return once the client side is closed. It returns the address.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}
