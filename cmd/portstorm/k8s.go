package main

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portstorm/portstorm/loadgen/k8s"
	"github.com/portstorm/portstorm/loadgen/report"
)

// defaultImage is --image's default: the image of this build's version (never :latest, which
// would run whatever was pushed last).
func defaultImage() string {
	bi, _ := debug.ReadBuildInfo()
	v := readVersion(bi, version, commit, date).Version
	if v == "" || strings.ContainsAny(v, "()") {
		v = "devel"
	}
	return "portstorm:" + strings.ReplaceAll(v, "+", "-")
}

func k8sCmd(e *env) *cobra.Command {
	var pf planFlags
	var o k8s.Options
	var checks k8s.Checks
	var startAt, out string
	var startIn time.Duration
	c := &cobra.Command{
		Use:   "k8s PLAN --parallelism N",
		Short: "Render Kubernetes manifests for a distributed run: the plan and its files, an Indexed Job of N segments (one per node), a results volume and the merge Job",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := pf.loadPlan(e, args[0])
			if err != nil {
				return err
			}
			if p.Search != nil {
				return exitWith(exitInvalid, fmt.Errorf("%s is a capacity search: a search runs on one machine (docs/search.md); run it with portstorm search", args[0]))
			}
			if o.Parallelism < 1 {
				return exitWith(exitInvalid, fmt.Errorf("--parallelism %d: want 1 or more segments", o.Parallelism))
			}
			warnings, err := k8s.FromPlan(p, &o, checks)
			for _, w := range warnings {
				fmt.Fprintf(e.stderr, "portstorm: warning: %s\n", w)
			}
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			o.AllowRemote = p.Target.AllowRemote
			o.StartAt = time.Now().Add(startIn).Truncate(time.Second)
			if startAt != "" {
				if o.StartAt, err = time.Parse(time.RFC3339Nano, startAt); err != nil {
					return exitWith(exitInvalid, fmt.Errorf("--start-at %q: want an RFC 3339 time: %w", startAt, err))
				}
			}
			if strings.HasPrefix(o.Image, "portstorm:devel") {
				fmt.Fprintf(e.stderr, "portstorm: warning: this portstorm is a development build: --image %s names no released image; build one (Dockerfile) and name it with --image\n", o.Image)
			}
			var b bytes.Buffer
			if err := k8s.Render(&b, o); err != nil {
				return exitWith(exitInvalid, err)
			}
			if out == "" {
				_, err := e.stdout.Write(b.Bytes())
				return err
			}
			if err := report.WriteFileAtomic(out, b.Bytes()); err != nil {
				return exitWith(exitCannotRun, err)
			}
			fmt.Fprintf(e.stderr, "portstorm: wrote %s: %d segment(s) start at %s; kubectl apply -f %s\n", out, o.Parallelism, o.StartAt.UTC().Format(time.RFC3339), out)
			return nil
		},
	}
	pf.add(c)
	f := c.Flags()
	f.IntVar(&o.Parallelism, "parallelism", 0, "segments, pods and nodes (one pod per node; required)")
	f.StringVar(&o.Image, "image", defaultImage(), "the portstorm image the pods run (default: this build's version)")
	f.StringVar(&o.PullPolicy, "pull-policy", "IfNotPresent", "the pods' imagePullPolicy: "+strings.Join(k8s.PullPolicies, ", "))
	f.StringVar(&o.Namespace, "namespace", "default", "the namespace of every manifest")
	f.StringVar(&startAt, "start-at", "", "the RFC 3339 instant every segment starts (default: now + --start-in)")
	f.DurationVar(&startIn, "start-in", 2*time.Minute, "start the segments this long after rendering: time for pods to be scheduled and pull the image")
	f.StringVar(&o.Storage, "storage", "1Gi", "size of the results volume")
	f.StringVar(&o.StorageClass, "storage-class", "", "storage class of the results volume (default the cluster's)")
	f.StringVar(&o.AccessMode, "access-mode", "ReadWriteMany", "access mode of the results volume: ReadWriteMany (ReadWriteOnce does for --parallelism 1)")
	f.StringVar(&o.CPU, "cpu", "1", "each segment pod's CPU request and limit (Kubernetes quantity)")
	f.StringVar(&o.Results, "results", "volume", "where shard folders go: volume (a shared ReadWriteMany claim) or upload (no shared volume: each segment pod sends its folder to the merge pod over HTTP)")
	f.DurationVar(&o.Linger, "merge-linger", 0, "with --results upload, keep the merge pod serving the merged folder this long (kubectl port-forward job/NAME-merge 7070, then /merged/report.html)")
	f.DurationVar(&o.MergeWait, "merge-wait", 2*time.Hour, "how long the merge Job waits for every segment")
	f.BoolVar(&checks.AllowBuiltinTarget, "allow-builtin-target", false, "render a plan with target.builtin: every pod load-tests its own loopback target (the generator side only)")
	f.BoolVar(&checks.UnsafeSysctls, "unsafe-sysctls", false, "render the plan's netns TIME_WAIT sysctls as pod sysctls (the kubelet must allow them)")
	f.StringVarP(&out, "output", "o", "", "write the manifests to this file (default stdout)")
	// Each fails only for an unknown flag.
	_ = c.RegisterFlagCompletionFunc("results", completeWords(k8s.ResultsModes))
	_ = c.RegisterFlagCompletionFunc("access-mode", completeWords(k8s.AccessModes))
	_ = c.RegisterFlagCompletionFunc("pull-policy", completeWords(k8s.PullPolicies))
	return c
}
