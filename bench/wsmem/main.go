// Command wsmem measures the client RSS per idle WebSocket connection, gobwas/ws against coder/websocket.
// Usage: wsmem gobwas|coder ADDR N (bench/wsmem/run.sh runs both against portstorm target --mode websocket).
package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	cws "github.com/coder/websocket"
	"github.com/gobwas/ws"
)

func rss() int64 {
	b, _ := os.ReadFile("/proc/self/statm")
	f := strings.Fields(string(b))
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n * 4096
}

func main() {
	lib, addr := os.Args[1], os.Args[2]
	n, _ := strconv.Atoi(os.Args[3])
	var keep []any
	runtime.GC()
	r0 := rss()
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		switch lib {
		case "gobwas":
			c, err := net.Dial("tcp", addr)
			if err != nil {
				panic(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br, _, err := ws.Dialer{}.Upgrade(c, &url.URL{Scheme: "ws", Host: addr, Path: "/"})
			if err != nil {
				panic(err)
			}
			if br != nil {
				ws.PutReader(br)
			}
			c.SetDeadline(time.Time{})
			keep = append(keep, c)
		case "coder":
			c, _, err := cws.Dial(ctx, "ws://"+addr+"/", nil)
			if err != nil {
				panic(err)
			}
			keep = append(keep, c)
		}
		cancel()
	}
	runtime.GC()
	time.Sleep(2 * time.Second)
	r1 := rss()
	fmt.Printf("%s: %d idle connections, RSS %d -> %d bytes: %d B per connection, %d goroutines\n", lib, n, r0, r1, (r1-r0)/int64(n), runtime.NumGoroutine())
	runtime.KeepAlive(keep)
}
