package main

// -not-vcenter serves HTTPS that answers 404 everywhere, with the same kind
// of certificate as the simulator: a stand-in for "the URL points at some
// other web server", which vkube must report as not being a vCenter.

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
)

func startNotVcenter(cert tls.Certificate) *httptest.Server {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nothing here", http.StatusNotFound)
	}))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ts.StartTLS()
	return ts
}

func sdkURL(ts *httptest.Server) *url.URL {
	u, _ := url.Parse(ts.URL)
	u.Path = "/sdk"
	return u
}
