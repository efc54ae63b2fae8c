package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Set at link time by release builds (Makefile: make release):
//
//	go build -ldflags "-X main.version=v0.1.0 -X main.commit=$(git rev-parse HEAD) -X main.date=2030-01-02T03:04:05Z"
//
// Empty values fall back to what the Go toolchain stamped into the binary (debug.ReadBuildInfo):
// the module version for `go install ...@v0.1.0`, vcs.revision and vcs.time for a build in a clone.
var version, commit, date string

// buildVersion is what `portstorm version` prints.
type buildVersion struct {
	Version, Commit, Date, Go, Platform string
	// Modified is vcs.modified: the binary was built from a tree with uncommitted changes.
	Modified bool
}

// readVersion combines the link-time values with the build info; bi may be nil (no build info).
func readVersion(bi *debug.BuildInfo, ldVersion, ldCommit, ldDate string) buildVersion {
	v := buildVersion{Version: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			v.Go = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.Date = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "GOOS":
				v.Platform = s.Value + v.Platform[strings.IndexByte(v.Platform, '/'):]
			case "GOARCH":
				v.Platform = v.Platform[:strings.IndexByte(v.Platform, '/')+1] + s.Value
			}
		}
	}
	if ldVersion != "" {
		v.Version = ldVersion
	}
	if ldCommit != "" {
		v.Commit, v.Modified = ldCommit, false
	}
	if ldDate != "" {
		v.Date = ldDate
	}
	return v
}

func (v buildVersion) write(w io.Writer) {
	commit, date := v.Commit, v.Date
	if commit == "" {
		commit = "unknown"
	} else if v.Modified {
		commit += " (modified)"
	}
	if date == "" {
		date = "unknown"
	}
	fmt.Fprintf(w, "portstorm %s\ncommit:   %s\nbuilt:    %s\ngo:       %s\nplatform: %s\n", v.Version, commit, date, v.Go, v.Platform)
}

func versionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date, Go version and platform",
		Args:  exactArgs(0),
		Run: func(c *cobra.Command, args []string) {
			bi, _ := debug.ReadBuildInfo()
			readVersion(bi, version, commit, date).write(e.stdout)
		},
	}
}
