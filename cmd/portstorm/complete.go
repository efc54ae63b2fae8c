package main

import (
	"fmt"
	"strings"

	"github.com/agnivade/levenshtein"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/portstorm/portstorm/loadgen/plan"
)

// Shell completion: cobra's `portstorm completion bash|zsh|fish|powershell` prints the script;
// the script asks `portstorm __complete ...` for candidates, which the functions below give: plan
// files for a PLAN argument, plan keys and their values for --set (from the plan package, where
// Validate checks them), and each enumerated flag's words.

// addCompletions registers the completions of every command under root that has a PLAN argument
// (plan files), folder arguments (RESULT_DIR, SHARD_DIR) or an --out folder, or a --set flag.
func addCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		switch {
		case c.ValidArgsFunction != nil:
		case strings.Contains(c.Use, "PLAN"):
			c.ValidArgsFunction = completePlanFile
		case strings.Contains(c.Use, "_DIR"):
			c.ValidArgsFunction = completeDirs
		}
		if c.Flags().Lookup("out") != nil {
			_ = c.MarkFlagDirname("out") // only fails for an unknown flag
		}
		if c.Flags().Lookup("set") != nil {
			_ = c.RegisterFlagCompletionFunc("set", completeSet) // only fails for an unknown or twice-registered flag
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completePlanFile offers YAML files (and folders) for a command's one PLAN argument.
func completePlanFile(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}

// completeDirs offers folders.
func completeDirs(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

// completeSet offers "key=" for every plan setting that starts with what was typed, and once the
// key is typed, "key=value" for each value the setting takes (plan.Values: the words of an
// enumerated setting, true/false, unlimited, auto).
func completeSet(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if key, val, ok := strings.Cut(toComplete, "="); ok {
		var out []string
		for _, v := range plan.Values(key) {
			if strings.HasPrefix(v, val) {
				out = append(out, key+"="+v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, k := range plan.Keys() {
		if strings.HasPrefix(k, toComplete) {
			out = append(out, k+"=")
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeWords completes a flag whose value is one of words.
func completeWords(words []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		var out []string
		for _, w := range words {
			if strings.HasPrefix(w, toComplete) {
				out = append(out, w)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// flagError is the error of a command line with a bad flag: for an unknown flag near one of the
// command's own (a typo: --quite), it names that flag.
func flagError(c *cobra.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		if near := nearFlag(c.Flags(), name); near != "" {
			msg += fmt.Sprintf(" (did you mean --%s?)", near)
		}
	}
	return fmt.Errorf("%s\nsee '%s --help'", msg, c.CommandPath())
}

// nearFlag returns the visible flag of fs nearest to name when it is near enough to be a typo
// (at most two edits, as cobra's command suggestions), or that name begins; "" when none is.
func nearFlag(fs *pflag.FlagSet, name string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := levenshtein.ComputeDistance(name, f.Name)
		if len(name) >= 3 && strings.HasPrefix(f.Name, name) {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	if bestD >= len(name) {
		return ""
	}
	return best
}
