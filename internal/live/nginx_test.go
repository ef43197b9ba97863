package live_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests run the real thing: nginx with Debian's RTMP module, rendered from
// deploy/nginx/live.conf.template on private ports, and ffmpeg publishing a generated
// stream. Missing binaries fail the test with what to install; scripts/test.sh (make test)
// installs them.

const rtmpModule = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

// binary finds name on PATH or in the sbin directories a non-root PATH may lack.
func binary(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin"} {
		if p := filepath.Join(d, name); isExec(p) {
			return p
		}
	}
	t.Fatalf("%s is not installed: the live end-to-end tests need nginx, libnginx-mod-rtmp and ffmpeg "+
		"(make test installs them as root; or apt-get install -y nginx libnginx-mod-rtmp ffmpeg)", name)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// ingest is a private nginx-rtmp.
type ingest struct {
	RTMPAddr, HTTPAddr string
	dir                string
}

// RTMPBase is where encoders publish (app "live").
func (in *ingest) RTMPBase() string { return "rtmp://" + in.RTMPAddr + "/live" }

// freeAddr is a free 127.0.0.1 port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newIngest reserves the ports of an nginx the test starts later with start (the app's
// configuration needs the URLs before the app runs, nginx needs the app's address).
func newIngest(t *testing.T) *ingest {
	t.Helper()
	return &ingest{RTMPAddr: freeAddr(t), HTTPAddr: freeAddr(t), dir: t.TempDir()}
}

// start renders the deploy template for this ingest and runs nginx in the foreground until
// the test ends. appURL is the app's base URL; update is notify_update_timeout.
func (in *ingest) start(t *testing.T, appURL, secret, update string) {
	t.Helper()
	nginx := binary(t, "nginx")
	if _, err := os.Stat(rtmpModule); err != nil {
		t.Fatalf("%s is missing: apt-get install -y libnginx-mod-rtmp (make test installs it as root)", rtmpModule)
	}
	_, file, _, _ := runtime.Caller(0)
	tmpl, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "nginx", "live.conf.template"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"hls", "tmp"} {
		if err := os.MkdirAll(filepath.Join(in.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	userDirective := ""
	if os.Geteuid() == 0 {
		// Workers would switch to nobody, who cannot write the test's private directory.
		userDirective = "user root;"
	}
	rtmpHost, rtmpPort, _ := net.SplitHostPort(in.RTMPAddr)
	httpHost, httpPort, _ := net.SplitHostPort(in.HTTPAddr)
	conf := strings.NewReplacer(
		"${USER_DIRECTIVE}", userDirective, "${PREFIX}", in.dir,
		"${RTMP_BIND}", rtmpHost+":", "${RTMP_PORT}", rtmpPort,
		"${HTTP_BIND}", httpHost+":", "${HTTP_PORT}", httpPort,
		"${APP_URL}", appURL, "${RTMP_SECRET}", secret, "${UPDATE_INTERVAL}", update,
	).Replace(string(tmpl))
	for _, l := range strings.Split(conf, "\n") {
		if l = strings.TrimSpace(l); !strings.HasPrefix(l, "#") && strings.Contains(l, "${") {
			t.Fatalf("unrendered variable left in the nginx config: %s", l)
		}
	}
	confPath := filepath.Join(in.dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	errLog := filepath.Join(in.dir, "error.log")
	if out, err := exec.Command(nginx, "-t", "-p", in.dir, "-c", confPath, "-e", errLog).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	var output bytes.Buffer
	cmd := exec.Command(nginx, "-p", in.dir, "-c", confPath, "-e", errLog)
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // fast shutdown of the master and its worker
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx output:\n%s\nnginx error.log (tail, without 404s):\n%s", output.String(), tail(logOf(errLog), 6000))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{in.RTMPAddr, in.HTTPAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				b, _ := os.ReadFile(errLog)
				t.Fatalf("nginx exited: %s\n%s", output.String(), tail(string(b), 4000))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx did not listen on %s", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// logOf is nginx's error log without the file-not-found lines of polled playlists.
func logOf(path string) string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "(2: No such file or directory)") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// publisher is one running ffmpeg publishing a generated test stream.
type publisher struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan struct{}
	err    error
}

// publish starts ffmpeg publishing for at most seconds to url (ENVIRONMENT.md's command,
// with a keyframe every second so HLS can cut 1 s fragments).
func publish(t *testing.T, url string, seconds int) *publisher {
	t.Helper()
	ff := binary(t, "ffmpeg")
	p := &publisher{out: &bytes.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.CommandContext(context.Background(), ff, "-hide_banner", "-loglevel", "warning", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-f", "lavfi", "-i", "sine",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15", "-c:a", "aac",
		"-t", strconv.Itoa(seconds), "-f", "flv", url)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill() })
	return p
}

// stop asks ffmpeg to finish (SIGINT: it closes the stream properly) and waits.
func (p *publisher) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("ffmpeg did not stop after SIGINT:\n%s", p.out)
	}
}

func (p *publisher) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// wait waits up to timeout for ffmpeg to exit by itself and reports whether it did.
func (p *publisher) wait(timeout time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (p *publisher) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}
