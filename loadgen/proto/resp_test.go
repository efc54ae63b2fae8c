package proto

import (
	"github.com/portstorm/portstorm/internal/loopback"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestRedisReplies(t *testing.T) {
	long := strings.Repeat("s", 8<<10)
	for _, tc := range []struct {
		name   string
		reply  string
		expect string
		max    int
		err    error
	}{
		{name: "pong", reply: "+PONG\r\n", expect: "PONG"},
		{name: "pong, any", reply: "+PONG\r\n"},
		{name: "pong, want other", reply: "+PONG\r\n", expect: "PANG", err: ErrReply},
		{name: "empty simple string", reply: "+\r\n"},
		{name: "null bulk", reply: "$-1\r\n"},
		{name: "null bulk, want value", reply: "$-1\r\n", expect: "v", err: ErrReply},
		{name: "null array", reply: "*-1\r\n"},
		{name: "integer", reply: ":42\r\n", expect: "42"},
		{name: "integer with sign", reply: ":+42\r\n", expect: "42"},
		{name: "negative integer", reply: ":-9223372036854775808\r\n", expect: "-9223372036854775808"},
		{name: "integer, want other", reply: ":43\r\n", expect: "42", err: ErrReply},
		{name: "integer, want text", reply: ":1\r\n", expect: "one", err: ErrReply},
		{name: "integer overflow", reply: ":9223372036854775808\r\n", err: ErrMalformed},
		{name: "integer not a number", reply: ":4x\r\n", err: ErrMalformed},
		{name: "error", reply: "-ERR unknown command 'FOO'\r\n", err: ErrReply},
		{name: "error, with expect", reply: "-WRONGTYPE Operation\r\n", expect: "OK", err: ErrReply},
		{name: "long error", reply: "-ERR " + long + "\r\n", err: ErrReply},
		{name: "blob error", reply: "!21\r\nSYNTAX invalid syntax\r\n", err: ErrReply},
		{name: "bulk", reply: "$5\r\nhello\r\n", expect: "hello"},
		{name: "empty bulk", reply: "$0\r\n\r\n"},
		{name: "bulk, want other", reply: "$5\r\nhello\r\n", expect: "hellp", err: ErrReply},
		{name: "bulk, want longer", reply: "$5\r\nhello\r\n", expect: "hello!", err: ErrReply},
		{name: "large bulk compared", reply: "$8192\r\n" + long + "\r\n", expect: long},
		{name: "large bulk differs at the end", reply: "$8192\r\n" + long[1:] + "t\r\n", expect: long, err: ErrReply},
		{name: "bulk without CRLF", reply: "$5\r\nhelloXY", err: ErrMalformed},
		{name: "bulk shorter than its length", reply: "$5\r\nhel", err: io.ErrUnexpectedEOF},
		{name: "long simple string skipped", reply: "+" + long + "\r\n"},
		{name: "long simple string compared", reply: "+" + long + "\r\n", expect: "x", err: ErrReply},
		{name: "long integer line", reply: ":" + long + "\r\n", err: ErrTooLarge},
		{name: "nested arrays", reply: "*3\r\n*2\r\n:1\r\n$1\r\na\r\n*0\r\n*1\r\n*1\r\n+x\r\n"},
		{name: "nested error is data", reply: "*2\r\n+OK\r\n-ERR in a transaction\r\n"},
		{name: "array, want value", reply: "*1\r\n+PONG\r\n", expect: "PONG", err: ErrReply},
		{name: "resp3 map", reply: "%2\r\n+first\r\n:1\r\n+second\r\n%1\r\n+k\r\n_\r\n"},
		{name: "resp3 set and push", reply: "~2\r\n+a\r\n+b\r\n"},
		{name: "resp3 push", reply: ">3\r\n+message\r\n+ch\r\n$2\r\nhi\r\n"},
		{name: "resp3 null", reply: "_\r\n"},
		{name: "resp3 null, want value", reply: "_\r\n", expect: "x", err: ErrReply},
		{name: "resp3 double", reply: ",3.14\r\n", expect: "3.14"},
		{name: "resp3 boolean", reply: "#t\r\n", expect: "t"},
		{name: "resp3 bad boolean", reply: "#x\r\n", err: ErrMalformed},
		{name: "resp3 big number", reply: "(3492890328409238509324850943850943825024385\r\n", expect: "3492890328409238509324850943850943825024385"},
		{name: "resp3 bad big number", reply: "(12a\r\n", err: ErrMalformed},
		{name: "resp3 verbatim", reply: "=15\r\ntxt:Some string\r\n", expect: "Some string"},
		{name: "resp3 verbatim too short", reply: "=2\r\ntx\r\n", expect: "x", err: ErrMalformed},
		{name: "resp3 attribute before the value", reply: "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n+OK\r\n", expect: "OK"},
		{name: "resp3 attribute inside an array", reply: "*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n"},
		{name: "resp3 empty attribute", reply: "|0\r\n:7\r\n", expect: "7"},
		{name: "resp3 streamed string", reply: "$?\r\n;4\r\nHell\r\n;0\r\n", err: ErrMalformed},
		{name: "depth at the limit", reply: strings.Repeat("*1\r\n", MaxDepth) + ":1\r\n"},
		{name: "depth bomb", reply: strings.Repeat("*1\r\n", 100000), err: ErrMalformed},
		{name: "huge bulk length", reply: "$999999999999\r\n", err: ErrTooLarge},
		{name: "huge array count", reply: "*999999999999\r\n", err: ErrTooLarge},
		{name: "huge map count", reply: "%4611686018427387903\r\n", err: ErrTooLarge},
		{name: "count over what the cap can hold", reply: "*350000\r\n", err: ErrTooLarge},
		{name: "overflowing length", reply: "$99999999999999999999999\r\n", err: ErrMalformed},
		{name: "negative length", reply: "$-2\r\n", err: ErrMalformed},
		{name: "null map", reply: "%-1\r\n", err: ErrMalformed},
		{name: "unknown type byte", reply: "?what\r\n", err: ErrMalformed},
		{name: "LF without CR", reply: "+OK\n", err: ErrMalformed},
		{name: "empty line", reply: "\r\n", err: ErrMalformed},
		{name: "closed before answering", reply: "", err: io.EOF},
		{name: "truncated", reply: "*2\r\n+a\r\n", err: io.ErrUnexpectedEOF},
		{name: "reply exactly the cap", reply: "+PONG\r\n", max: 7},
		{name: "reply over the cap", reply: "$10\r\n0123456789\r\n", max: 16, err: ErrTooLarge},
		{name: "10 MiB bulk, 1 MiB cap", reply: "$10485760\r\n" + strings.Repeat("x", 10<<20) + "\r\n", err: ErrTooLarge},
		{name: "10 MiB of elements, 1 MiB cap", reply: "*2621440\r\n" + strings.Repeat(":1\r\n", 10<<20/4), err: ErrTooLarge},
		{name: "10 MiB simple string, 1 MiB cap", reply: "+" + strings.Repeat("x", 10<<20) + "\r\n", err: ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"PING"}, Expect: tc.expect}, MaxResponse: tc.max}
			res, c, err := exchange(t, spec, scripted(t, []byte(tc.reply)))
			checkErr(t, err, tc.err)
			max := tc.max
			if max == 0 {
				max = DefaultMaxResponse
			}
			if c.read > max || res.In > c.read || res.In > len(tc.reply) || res.Status != 0 || res.Closed {
				t.Errorf("%+v: read %d bytes from a %d-byte reply with a %d-byte cap", res, c.read, len(tc.reply), max)
			}
			if tc.err == nil && res.In != len(tc.reply) {
				t.Errorf("In %d, want all %d bytes", res.In, len(tc.reply))
			}
		})
	}
}

// Several commands on one connection, against a server that answers each one as it arrives.
func TestRedisConversation(t *testing.T) {
	x, err := Compile(Spec{Protocol: Redis, Redis: RedisSpec{Command: []string{"INCR", "n"}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := loopback.Serve(t, func(c net.Conn) {
		req := make([]byte, len(x.request))
		for i := 1; i <= 20; i++ {
			if _, err := io.ReadFull(c, req); err != nil || string(req) != string(x.request) {
				return
			}
			if _, err := io.WriteString(c, ":"+strconv.Itoa(i)+"\r\n"); err != nil {
				return
			}
		}
	})
	c := dial(t, addr)
	r := NewReader()
	r.Reset(c)
	for i := 1; i <= 20; i++ {
		res, err := x.Do(c, r)
		if err != nil || res.In != len(strconv.Itoa(i))+3 || res.Out != len(x.request) || res.Full < res.FirstByte {
			t.Fatalf("command %d: %+v %v", i, res, err)
		}
	}
}
