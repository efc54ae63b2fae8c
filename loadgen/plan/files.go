package plan

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxCAFile is the largest connection.tls.ca_file read (16 MiB); a system's whole CA bundle is a
// few hundred kilobytes.
const MaxCAFile = 16 << 20

// ReadFile reads a file a plan names (a request, a CA file, a baseline), or a plan itself: a
// regular file of at most limit bytes. A named pipe, a device, a socket or a folder is refused
// before anything is read: open(2) of a FIFO for reading waits for a writer (fifo(7)), possibly
// forever, and reading a device may never end. The path is checked with stat, then opened with
// O_NONBLOCK and checked again on the open descriptor, so that a FIFO put in its place between the
// two cannot block either: with O_NONBLOCK, opening a FIFO for reading returns at once (fifo(7)),
// and on a regular file the flag changes nothing. O_NOCTTY keeps a terminal named by mistake from
// becoming the process's controlling terminal (open(2)).
func ReadFile(path string, limit int64) ([]byte, error) {
	data, err := readRegular(path, limit)
	var big *tooLargeError
	if errors.As(err, &big) {
		return nil, fmt.Errorf("%s holds %d bytes; the limit is %d bytes", echoPath(path), big.size, limit)
	}
	return data, err
}

// tooLargeError is a file over the limit readRegular was given; size is at least limit+1.
type tooLargeError struct{ size int64 }

func (e *tooLargeError) Error() string { return fmt.Sprintf("%d bytes", e.size) }

func readRegular(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	f, fi, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > limit {
		return nil, &tooLargeError{size: fi.Size()}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fileError(path, err)
	}
	if int64(len(data)) > limit { // it grew since fstat
		return nil, &tooLargeError{size: int64(len(data))}
	}
	return data, nil
}

// openRegular opens path for reading without waiting on a FIFO, and refuses what the open
// descriptor shows is not a regular file.
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fileError(path, err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = regular(path, fi)
	} else {
		err = fileError(path, err)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// regular refuses anything but a regular file, naming what it is.
func regular(path string, fi fs.FileInfo) error {
	m := fi.Mode()
	var what string
	switch {
	case m.IsRegular():
		return nil
	case m.IsDir():
		what = "a folder"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a block device"
	default:
		what = "not a regular file"
	}
	return fmt.Errorf("%s is %s; want a regular file", echoPath(path), what)
}

// fileError states an error of the file system without the operation ("open", "stat") and with the
// path shortened: a path written into a plan can be any length.
func fileError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", echoPath(path), pe.Err)
	}
	return fmt.Errorf("%s: %w", echoPath(path), err)
}

// echoPath is a path as messages show it: whole when short, else its start and its length.
func echoPath(path string) string {
	if s, cut := clip(path); cut {
		return s
	}
	return path
}

// checkCA reports what keeps the contents of a CA file from being used: no PEM certificate that
// crypto/x509 accepts, which is what the run's x509.CertPool.AppendCertsFromPEM needs.
func checkCA(path string, data []byte) error {
	blocks, certs := 0, 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		if b.Type == "CERTIFICATE" {
			certs++
		}
	}
	switch {
	case blocks == 0:
		return fmt.Errorf("%s is not PEM: want certificates between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines", echoPath(path))
	case certs == 0:
		return fmt.Errorf("%s holds %d PEM block(s) but no CERTIFICATE", echoPath(path), blocks)
	case !x509.NewCertPool().AppendCertsFromPEM(data):
		return fmt.Errorf("%s holds %d PEM certificate(s) and none parses", echoPath(path), certs)
	}
	return nil
}
