package loadtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
)

// Caddy is a Caddy process run for a measurement, its config, data and output in one directory.
type Caddy struct {
	// Log is the file Caddy's standard output and error go to.
	Log string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // how the process ended, once done is closed
}

// StartCaddy writes caddyfile to dir/Caddyfile and runs bin with it, with env added to its
// environment. Caddy's data (the signing key, the embedded store) and config directories are
// dir as well, so a run reads and leaves nothing elsewhere.
func StartCaddy(bin, dir, caddyfile string, env ...string) (*Caddy, error) {
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Env = append(append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir), env...)
	logf, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	c := &Caddy{Log: logf.Name(), cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

// Pid is the process's id.
func (c *Caddy) Pid() int { return c.cmd.Process.Pid }

// Done is closed when the process has ended; Err then says how.
func (c *Caddy) Done() <-chan struct{} { return c.done }

// Err is how the process ended, once Done is closed.
func (c *Caddy) Err() error { return c.err }

// Stop kills the process and waits for it to end.
func (c *Caddy) Stop() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// LoggedErrors counts the lines Caddy has logged at level error.
func (c *Caddy) LoggedErrors() int { return len(c.ErrorLines()) }

// ErrorLines are the lines Caddy has logged at level error.
func (c *Caddy) ErrorLines() []string {
	logs, _ := os.ReadFile(c.Log)
	var lines []string
	for line := range bytes.Lines(logs) {
		if bytes.Contains(line, []byte(`"level":"error"`)) {
			lines = append(lines, string(bytes.TrimSpace(line)))
		}
	}
	return lines
}
