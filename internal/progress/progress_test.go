package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	got := Render("iso", 512<<20, 1<<30, 2*time.Second, 10)
	for _, want := range []string{"[=====>    ]", " 50%", "512.0 MiB/1.0 GiB", "256.0 MiB/s"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if got := Render("x", 5, 0, 0, 4); !strings.Contains(got, "[>   ]") || !strings.Contains(got, "  0%") {
		t.Errorf("zero total: %q", got)
	}
	if got := Render("x", 10, 5, 0, 4); !strings.Contains(got, "[====]") || !strings.Contains(got, "100%") {
		t.Errorf("overshoot: %q", got)
	}
}

func TestBarDisabledIsNil(t *testing.T) {
	var b *Bar = New(nil, false, "x", 1)
	b.Add(1) // must not panic
	b.Set(1, 1)
	b.Finish()
}

func TestBarDraws(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, true, "copy", 100)
	b.Add(40)
	b.Add(60)
	b.Finish()
	if !strings.Contains(out.String(), "100%") || !strings.HasSuffix(out.String(), "\n") {
		t.Errorf("output %q", out.String())
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
