// Command vcsim is vkube's vCenter simulator harness.
//
// It wraps govmomi's simulator (vcsim) with the VPX (vCenter) inventory model,
// the vAPI REST endpoints (/rest), CNS and PBM, enforces the configured
// credentials on SOAP and REST logins, and replaces the simulator's
// AuthorizationManager with a faithful one (see authz.go).
//
// Protocol for callers: the FIRST line on stdout is the service URL
// (e.g. https://127.0.0.1:PORT/sdk, no credentials). The process serves until
// SIGTERM/SIGINT, then shuts down and exits 0.
package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/vmware/govmomi/cns/simulator" // registers the CNS SOAP endpoint
	_ "github.com/vmware/govmomi/pbm/simulator" // registers the PBM SOAP endpoint
	"github.com/vmware/govmomi/simulator"
	_ "github.com/vmware/govmomi/vapi/simulator" // registers the vAPI REST endpoints under /rest
)

// restSessionPath is the vAPI (REST) login endpoint, guarded by checkRESTLogin.
const restSessionPath = "/rest/com/vmware/cis/session"

// Config describes one simulator instance.
type Config struct {
	Listen   string // host:port, port 0 picks a free port
	TLS      bool
	Username string
	Password string

	Datacenter     int // datacenters
	Cluster        int // clusters per datacenter
	ClusterHost    int // hosts per cluster
	StandaloneHost int // standalone hosts per datacenter
	Machine        int // VMs per resource pool (cluster root pool / standalone host)
	Datastore      int // local datastores per datacenter
	Portgroup      int // DVS port groups per datacenter
	Pod            int // datastore clusters (StoragePod) per datacenter
	Folder         int // datacenters placed within a folder
	Pool           int // extra resource pools per cluster

	Delay       int            // ms added to every SOAP call
	MethodDelay map[string]int // ms added per SOAP method name, e.g. CloneVM_Task
	DelayJitter float64        // coefficient of variation applied to the delay

	SessionIdleTimeout  time.Duration // 0 = sessions never expire
	ExpireSessionsEvery time.Duration // 0 = never; else end every SOAP session this often

	ExtraPrivileges []string // privilege ids registered in addition to the simulator's

	CAOut      string // write the server certificate (PEM) here
	ESX        bool   // simulate a standalone ESXi host instead of a vCenter
	NotVcenter bool   // serve HTTPS 404s only, no vSphere API
}

// DefaultConfig mirrors vcsim's VPX defaults.
func DefaultConfig() Config {
	m := simulator.VPX()
	return Config{
		Listen:         "127.0.0.1:0",
		TLS:            true,
		Username:       "user",
		Password:       "pass",
		Datacenter:     m.Datacenter,
		Cluster:        m.Cluster,
		ClusterHost:    m.ClusterHost,
		StandaloneHost: m.Host,
		Machine:        m.Machine,
		Datastore:      m.Datastore,
		Portgroup:      m.Portgroup,
		Pod:            m.Pod,
		Folder:         m.Folder,
		Pool:           m.Pool,
	}
}

// Instance is a running simulator.
type Instance struct {
	Model  *simulator.Model
	Server *simulator.Server
	Authz  *AuthzManager
	// URL of the SDK endpoint without credentials.
	URL *url.URL
	cfg Config
	// other is the plain HTTPS server of -not-vcenter mode.
	other *httptest.Server
	// stopExpiry ends the -expire-sessions-every schedule.
	stopExpiry func()
}

// Start builds the model described by cfg and starts serving it.
// The simulator keeps global state (simulator.Map), so only one Instance may
// run per process at a time.
func Start(cfg Config) (*Instance, error) {
	if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("username and password must not be empty")
	}

	cert, certPEM, err := newServerCertificate()
	if err != nil {
		return nil, fmt.Errorf("generating the server certificate: %w", err)
	}
	if cfg.CAOut != "" {
		if err := os.WriteFile(cfg.CAOut, certPEM, 0o600); err != nil {
			return nil, fmt.Errorf("writing -ca-out: %w", err)
		}
	}
	if cfg.NotVcenter {
		ts := startNotVcenter(cert)
		return &Instance{other: ts, URL: sdkURL(ts), cfg: cfg}, nil
	}

	model := simulator.VPX()
	if cfg.ESX {
		model = simulator.ESX()
	} else {
		model.Datacenter = cfg.Datacenter
		model.Cluster = cfg.Cluster
		model.ClusterHost = cfg.ClusterHost
		model.Host = cfg.StandaloneHost
		model.Machine = cfg.Machine
		model.Datastore = cfg.Datastore
		model.Portgroup = cfg.Portgroup
		model.Pod = cfg.Pod
		model.Folder = cfg.Folder
		model.Pool = cfg.Pool
	}
	model.DelayConfig = simulator.DelayConfig{
		Delay:       cfg.Delay,
		MethodDelay: cfg.MethodDelay,
		DelayJitter: cfg.DelayJitter,
	}

	// A process-wide simulator global, read by session watch goroutines that
	// outlive an Instance: only write it when it changes.
	if simulator.SessionIdleTimeout != cfg.SessionIdleTimeout {
		simulator.SessionIdleTimeout = cfg.SessionIdleTimeout
	}

	if err := model.Create(); err != nil {
		model.Remove()
		return nil, fmt.Errorf("creating model: %w", err)
	}

	SetDatastoreURLs()
	InstallDeviceOwner()

	authz, err := InstallAuthz(model.ServiceContent.AuthorizationManager.Reference(), cfg.ExtraPrivileges, cfg.Username)
	if err != nil {
		model.Remove()
		return nil, err
	}

	svc := model.Service
	svc.RegisterEndpoints = true
	// A user in Listen makes SessionManager.Login compare credentials
	// (without it, any non-empty user/password is accepted).
	svc.Listen = &url.URL{Host: cfg.Listen, User: url.UserPassword(cfg.Username, cfg.Password)}
	if cfg.TLS {
		svc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	mux := http.NewServeMux()
	svc.ServeMux = mux
	mux.HandleFunc(restSessionPath, checkRESTLogin(mux, cfg.Username, cfg.Password))

	server := svc.NewServer()

	u := *server.URL
	u.User = nil

	stopExpiry := startSessionExpiry(cfg.ExpireSessionsEvery)

	return &Instance{Model: model, Server: server, Authz: authz, URL: &u, cfg: cfg, stopExpiry: stopExpiry}, nil
}

// Stop shuts the server down and removes the model's temporary files.
func (i *Instance) Stop() {
	if i.other != nil {
		i.other.Close()
		return
	}
	i.stopExpiry()
	i.Server.Close()
	i.Model.Remove()
}

// checkRESTLogin rejects REST logins (basic auth) with wrong credentials; the
// vAPI simulator alone accepts any non-empty user/password. Requests without
// basic auth (session queries, token auth) pass through unchanged to the
// handler the vAPI simulator registered under /rest/.
func checkRESTLogin(mux *http.ServeMux, user, pass string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && r.Method == http.MethodPost {
			if u != user || p != pass {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		h, pattern := mux.Handler(&http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/rest/"}})
		if pattern == "" || pattern == restSessionPath {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}
}

// ReadPrivilegeFile parses a privilege id list: one id per line, '#' starts a comment.
func ReadPrivilegeFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parsePrivileges(f)
}

func parsePrivileges(r io.Reader) ([]string, error) {
	var ids []string
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("line %d: invalid privilege id %q", n, line)
		}
		ids = append(ids, line)
	}
	return ids, sc.Err()
}

// parseMethodDelay parses "CloneVM_Task=3000,PowerOnVM_Task=500".
func parseMethodDelay(s string) (map[string]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := make(map[string]int)
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		i := strings.IndexByte(kv, '=')
		if i <= 0 {
			return nil, fmt.Errorf("invalid method delay %q (want Method=ms)", kv)
		}
		ms, err := strconv.Atoi(strings.TrimSpace(kv[i+1:]))
		if err != nil || ms < 0 {
			return nil, fmt.Errorf("invalid method delay %q (want Method=ms)", kv)
		}
		m[strings.TrimSpace(kv[:i])] = ms
	}
	return m, nil
}

// ParseFlags builds a Config from command line arguments.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("vcsim", flag.ContinueOnError)
	fs.SetOutput(stderr)

	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "listen address host:port (port 0 = any free port)")
	fs.BoolVar(&cfg.TLS, "tls", cfg.TLS, "serve https")
	fs.StringVar(&cfg.Username, "username", cfg.Username, "the only user name accepted at login")
	fs.StringVar(&cfg.Password, "password", cfg.Password, "the only password accepted at login")
	fs.IntVar(&cfg.Datacenter, "dc", cfg.Datacenter, "number of datacenters")
	fs.IntVar(&cfg.Cluster, "cluster", cfg.Cluster, "clusters per datacenter")
	fs.IntVar(&cfg.ClusterHost, "host", cfg.ClusterHost, "hosts per cluster")
	fs.IntVar(&cfg.StandaloneHost, "standalone-host", cfg.StandaloneHost, "standalone hosts per datacenter")
	fs.IntVar(&cfg.Machine, "vm", cfg.Machine, "VMs per resource pool (cluster root pool and standalone host)")
	fs.IntVar(&cfg.Datastore, "ds", cfg.Datastore, "local datastores per datacenter")
	fs.IntVar(&cfg.Portgroup, "pg", cfg.Portgroup, "distributed port groups per datacenter")
	fs.IntVar(&cfg.Pod, "pod", cfg.Pod, "datastore clusters (StoragePod) per datacenter")
	fs.IntVar(&cfg.Folder, "folder", cfg.Folder, "datacenters placed within a folder")
	fs.IntVar(&cfg.Pool, "pool", cfg.Pool, "extra resource pools per cluster")
	fs.IntVar(&cfg.Delay, "delay", cfg.Delay, "delay in ms added to every SOAP call")
	methodDelay := fs.String("method-delay", "", "per-method delay in ms, e.g. CloneVM_Task=3000,PowerOnVM_Task=500")
	fs.Float64Var(&cfg.DelayJitter, "delay-jitter", cfg.DelayJitter, "delay jitter as coefficient of variation (stddev/mean)")
	fs.DurationVar(&cfg.SessionIdleTimeout, "session-idle-timeout", cfg.SessionIdleTimeout, "expire sessions idle this long, e.g. 30s (0 = never)")
	fs.DurationVar(&cfg.ExpireSessionsEvery, "expire-sessions-every", cfg.ExpireSessionsEvery, "end every SOAP session this often, busy or idle, e.g. 700ms (0 = never)")
	fs.StringVar(&cfg.CAOut, "ca-out", "", "write the server's self-signed certificate (PEM) to this file")
	fs.BoolVar(&cfg.ESX, "esx", false, "simulate a standalone ESXi host (API type HostAgent) instead of a vCenter")
	fs.BoolVar(&cfg.NotVcenter, "not-vcenter", false, "serve HTTPS 404s only (a web server that is not a vCenter)")
	var privFiles fileList
	fs.Var(&privFiles, "privileges", "file of extra privilege ids to register (one per line, # comments); may be repeated")

	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	if cfg.ExpireSessionsEvery < 0 {
		return cfg, fmt.Errorf("-expire-sessions-every must not be negative, got %v", cfg.ExpireSessionsEvery)
	}

	md, err := parseMethodDelay(*methodDelay)
	if err != nil {
		return cfg, err
	}
	cfg.MethodDelay = md

	for _, f := range privFiles {
		ids, err := ReadPrivilegeFile(f)
		if err != nil {
			return cfg, fmt.Errorf("reading privileges: %w", err)
		}
		cfg.ExtraPrivileges = append(cfg.ExtraPrivileges, ids...)
	}
	return cfg, nil
}

// fileList is a repeatable string flag.
type fileList []string

func (l *fileList) String() string { return strings.Join(*l, ",") }

func (l *fileList) Set(v string) error {
	if v != "" {
		*l = append(*l, v)
	}
	return nil
}

func run(args []string) int {
	cfg, err := ParseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "vcsim:", err)
		return 2
	}

	// Register before starting so an early signal is not lost.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	inst, err := Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vcsim:", err)
		return 1
	}

	// os.Stdout is unbuffered: this line is flushed immediately.
	fmt.Fprintln(os.Stdout, inst.URL.String())

	s := <-sig
	fmt.Fprintf(os.Stderr, "vcsim: %s received, shutting down\n", s)
	inst.Stop()
	return 0
}

func main() {
	os.Exit(run(os.Args[1:]))
}
