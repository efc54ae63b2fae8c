package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/portstorm/portstorm/loadgen/k8s"
	"github.com/portstorm/portstorm/loadgen/plan"
	"github.com/portstorm/portstorm/loadgen/report"
)

func k8sCmd(e *env) *cobra.Command {
	var o k8s.Options
	var startAt, out string
	var startIn time.Duration
	c := &cobra.Command{
		Use:   "k8s PLAN --parallelism N",
		Short: "Render Kubernetes manifests for a distributed run: the plan, an Indexed Job of N segments (one per node), a results volume and the merge Job",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := (&planFlags{}).loadPlan(e, args[0])
			if err != nil {
				return err
			}
			if p.Search != nil {
				return exitWith(exitInvalid, fmt.Errorf("%s is a capacity search: a search runs on one machine (docs/search.md); run it with portstorm search", args[0]))
			}
			if o.Parallelism < 1 {
				return exitWith(exitInvalid, fmt.Errorf("--parallelism %d: want 1 or more segments", o.Parallelism))
			}
			if o.Plan, err = plan.ReadFile(args[0], plan.MaxFileSize); err != nil {
				return exitWith(exitInvalid, err)
			}
			o.Name, o.AllowRemote = p.Name, p.Target.AllowRemote
			o.StartAt = time.Now().Add(startIn).Truncate(time.Second)
			if startAt != "" {
				if o.StartAt, err = time.Parse(time.RFC3339Nano, startAt); err != nil {
					return exitWith(exitInvalid, fmt.Errorf("--start-at %q: want an RFC 3339 time: %w", startAt, err))
				}
			}
			if out == "" {
				return renderK8s(e, o)
			}
			f, err := os.CreateTemp("", "portstorm-k8s-")
			if err != nil {
				return exitWith(exitCannotRun, err)
			}
			defer os.Remove(f.Name())
			err = k8s.Render(f, o)
			f.Close()
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			b, err := os.ReadFile(f.Name())
			if err == nil {
				err = report.WriteFileAtomic(out, b)
			}
			if err != nil {
				return exitWith(exitCannotRun, err)
			}
			fmt.Fprintf(e.stderr, "portstorm: wrote %s: %d segment(s) start at %s; kubectl apply -f %s\n", out, o.Parallelism, o.StartAt.UTC().Format(time.RFC3339), out)
			return nil
		},
	}
	c.Flags().IntVar(&o.Parallelism, "parallelism", 0, "segments, pods and nodes (one pod per node; required)")
	c.Flags().StringVar(&o.Image, "image", "portstorm:latest", "the portstorm image the pods run")
	c.Flags().StringVar(&o.Namespace, "namespace", "default", "the namespace of every manifest")
	c.Flags().StringVar(&startAt, "start-at", "", "the RFC 3339 instant every segment starts (default: now + --start-in)")
	c.Flags().DurationVar(&startIn, "start-in", 2*time.Minute, "start the segments this long after rendering: time for pods to be scheduled and pull the image")
	c.Flags().StringVar(&o.Storage, "storage", "1Gi", "size of the ReadWriteMany results volume")
	c.Flags().StringVar(&o.StorageClass, "storage-class", "", "storage class of the results volume (must offer ReadWriteMany; default the cluster's)")
	c.Flags().DurationVar(&o.MergeWait, "merge-wait", 2*time.Hour, "how long the merge Job waits for every segment")
	c.Flags().StringVarP(&out, "output", "o", "", "write the manifests to this file (default stdout)")
	return c
}

func renderK8s(e *env, o k8s.Options) error {
	if err := k8s.Render(e.stdout, o); err != nil {
		return exitWith(exitInvalid, err)
	}
	return nil
}
