package isolate

import (
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCommandEnv: the child gets the environment it is given, once, with ChildEnv added; it is
// not this process's own (--netns passed the environment twice: Command set os.Environ() and the
// caller replaced it).
func TestCommandEnv(t *testing.T) {
	t.Setenv("PORTSTORM_ISOLATE_TEST_OWN", "1") // this process's own: must not reach the child
	for _, tt := range []struct {
		name string
		env  []string
		want []string
	}{
		{"given", []string{"A=1", "B=2"}, []string{"A=1", "B=2", ChildEnv + "=1"}},
		{"none", nil, []string{ChildEnv + "=1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			given := slices.Clone(tt.env)
			cmd := Command("/bin/true", tt.env, "x")
			if !slices.Equal(cmd.Env, tt.want) {
				t.Errorf("env %q, want %q", cmd.Env, tt.want)
			}
			if !slices.Equal(tt.env, given) {
				t.Errorf("the caller's environment changed: %q", tt.env)
			}
			if !IsChild(cmd.Env) || IsChild(tt.env) {
				t.Errorf("IsChild(child's) %v, IsChild(given) %v", IsChild(cmd.Env), IsChild(tt.env))
			}
		})
	}
}
