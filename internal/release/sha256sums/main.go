// Command sha256sums writes the SHA-256 checksums of the files given, in the format of
// sha256sum(1) ("<hex>  <name>", names relative to the current folder, sorted), so that a
// release (Makefile: make release) needs the Go toolchain alone. Check with `sha256sum -c SHA256SUMS`.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
)

func main() {
	names := slices.Clone(os.Args[1:])
	slices.Sort(names)
	if len(names) == 0 {
		fmt.Fprintln(os.Stderr, "usage: sha256sums FILE... > SHA256SUMS")
		os.Exit(2)
	}
	for _, n := range names {
		sum, err := fileSum(n)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sha256sums: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("%s  %s\n", sum, n)
	}
}

func fileSum(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
