package cliutil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ferry-k8s/ferry/internal/progress"
)

// GlobalFlags are accepted by every command of both programs.
var GlobalFlags = []cli.Flag{
	&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format on stderr: text or json", EnvVars: []string{"FERRY_LOG_FORMAT"}},
	&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"FERRY_LOG_LEVEL"}},
}

// JSONFlag asks a command for machine-readable output on stdout.
var JSONFlag = &cli.BoolFlag{Name: "json", Usage: "print the result as JSON on stdout (no progress bars)"}

// Logger builds the structured logger from the global flags.
func Logger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, cli.Exit(fmt.Sprintf("--log-level: %v", err), 2)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return nil, cli.Exit(fmt.Sprintf("--log-format: %q is neither text nor json", c.String("log-format")), 2)
}

// ProgressWriter returns where progress bars go: stdout when it is a
// terminal and JSON was not asked for, else nil (no bars).
func ProgressWriter(c *cli.Context) io.Writer {
	if c.Bool("json") {
		return nil
	}
	if f, ok := c.App.Writer.(*os.File); ok && progress.IsTerminal(f) {
		return f
	}
	return nil
}

// PrintJSON writes v indented to the command's stdout.
func PrintJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Main runs app with the process's arguments, stopping on SIGINT/SIGTERM
// through the context, and exits with the command's exit code: 1 for a
// failure, 2 for bad usage, as the commands return them.
func Main(app *cli.App) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.RunContext(ctx, os.Args)
	stop()
	if err == nil {
		return
	}
	code := 1
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(os.Stderr, "%s: %s\n", app.Name, msg)
	}
	os.Exit(code)
}
