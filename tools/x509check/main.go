// Command x509check reads key material with Go's crypto/x509 and crypto/tls,
// the parsers kubeadm, kube-apiserver, kube-controller-manager and kubectl
// use, and prints one line per check ("ok   ..." or "FAIL ..."). It exits 1
// if any check fails, 2 on bad usage. Standard library only.
//
// Usage:
//
//	x509check [-at TIME] [-ca CA.crt] PATH...
//	x509check [-at TIME] -kubeconfig FILE
//
// PATH is a PEM file or a directory (walked recursively, every file must
// hold PEM). Each PEM block is parsed by its type:
//
//	CERTIFICATE      x509.ParseCertificate; the serial must be positive; a CA
//	                 must have basic constraints, keyCertSign and a subject
//	                 key identifier, and be valid at TIME
//	PRIVATE KEY      x509.ParsePKCS8PrivateKey
//	EC PRIVATE KEY   x509.ParseECPrivateKey
//	RSA PRIVATE KEY  x509.ParsePKCS1PrivateKey
//	PUBLIC KEY       x509.ParsePKIXPublicKey
//
// Files named NAME.crt and NAME.key are loaded as a pair with
// tls.X509KeyPair; NAME.key and NAME.pub must hold the same key. With -ca,
// every certificate that is not a CA must verify against that CA for client
// authentication at TIME.
//
// With -kubeconfig, the embedded certificate-authority-data,
// client-certificate-data and client-key-data are loaded as client-go does
// (a CA pool and tls.X509KeyPair) and the client certificate must verify
// against the CA at TIME. The reader is line-based, not a YAML parser: it
// expects one cluster and one user with the data fields as plain one-line
// values, as vkube and kubectl write them, and top-level `apiVersion: v1`
// and `kind: Config`.
//
// TIME is Unix seconds or RFC 3339; the default is now.
package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	at := flag.String("at", "", "check validity at this time: Unix seconds or RFC 3339 (default now)")
	caFile := flag.String("ca", "", "CA certificate that every non-CA certificate must verify against")
	kubeconfig := flag.String("kubeconfig", "", "check the embedded credentials of this kubeconfig instead of PATHs")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: x509check [-at TIME] [-ca CA.crt] PATH...\n       x509check [-at TIME] -kubeconfig FILE\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	when, err := parseTime(*at)
	if err != nil {
		usage(err)
	}
	r := &report{}
	switch {
	case *kubeconfig != "" && (flag.NArg() > 0 || *caFile != ""):
		usage(errors.New("-kubeconfig takes no PATH and no -ca"))
	case *kubeconfig != "":
		checkKubeconfig(r, *kubeconfig, when)
	case flag.NArg() == 0:
		usage(errors.New("no PATH given"))
	default:
		checkPaths(r, flag.Args(), *caFile, when)
	}
	if r.failed {
		os.Exit(1)
	}
}

func usage(err error) {
	fmt.Fprintf(os.Stderr, "x509check: %v\n", err)
	flag.Usage()
	os.Exit(2)
}

// report prints one line per check and remembers whether any failed.
type report struct{ failed bool }

func (r *report) ok(subject, check, detail string) {
	fmt.Printf("ok   %s: %s: %s\n", subject, check, detail)
}

func (r *report) fail(subject, check string, err error) {
	r.failed = true
	fmt.Printf("FAIL %s: %s: %v\n", subject, check, err)
}

// result reports err as a failure, or detail if err is nil.
func (r *report) result(subject, check, detail string, err error) {
	if err != nil {
		r.fail(subject, check, err)
	} else {
		r.ok(subject, check, detail)
	}
}

func parseTime(text string) (time.Time, error) {
	if text == "" {
		return time.Now(), nil
	}
	if seconds, err := strconv.ParseInt(text, 10, 64); err == nil {
		return time.Unix(seconds, 0), nil
	}
	when, err := time.Parse(time.RFC3339, text)
	if err != nil {
		return time.Time{}, fmt.Errorf("-at %q is neither Unix seconds nor RFC 3339", text)
	}
	return when, nil
}

// material is what the files held, by path, for the cross-file checks.
type material struct {
	pem     map[string][]byte
	certs   map[string]*x509.Certificate
	private map[string]crypto.PrivateKey
	public  map[string]crypto.PublicKey
}

func checkPaths(r *report, args []string, caFile string, when time.Time) {
	files, err := listFiles(args)
	if err != nil {
		r.fail("arguments", "list files", err)
		return
	}
	m := material{
		pem:     map[string][]byte{},
		certs:   map[string]*x509.Certificate{},
		private: map[string]crypto.PrivateKey{},
		public:  map[string]crypto.PublicKey{},
	}
	for _, file := range files {
		checkFile(r, file, &m, when)
	}
	checkPairs(r, &m)
	if caFile != "" {
		checkLeaves(r, &m, caFile, when)
	}
}

func listFiles(args []string) ([]string, error) {
	var files []string
	for _, arg := range args {
		info, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, arg)
			continue
		}
		err = filepath.WalkDir(arg, func(path string, entry fs.DirEntry, err error) error {
			if err == nil && entry.Type().IsRegular() {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	return files, nil
}

func checkFile(r *report, file string, m *material, when time.Time) {
	data, err := os.ReadFile(file)
	if err != nil {
		r.fail(file, "read", err)
		return
	}
	m.pem[file] = data
	rest := data
	blocks := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		blocks++
		checkBlock(r, file, block, m, when)
	}
	if blocks == 0 {
		r.fail(file, "pem", errors.New("no PEM block"))
	} else if len(bytes.TrimSpace(rest)) > 0 {
		r.fail(file, "pem", errors.New("data after the last PEM block"))
	}
}

func checkBlock(r *report, file string, block *pem.Block, m *material, when time.Time) {
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			r.fail(file, "x509.ParseCertificate", err)
			return
		}
		r.ok(file, "x509.ParseCertificate", describeCert(cert))
		m.certs[file] = cert
		checkCert(r, file, cert, when)
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		m.recordPrivate(r, file, "x509.ParsePKCS8PrivateKey", key, err)
	case "EC PRIVATE KEY":
		key, err := x509.ParseECPrivateKey(block.Bytes)
		m.recordPrivate(r, file, "x509.ParseECPrivateKey", key, err)
	case "RSA PRIVATE KEY":
		key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		m.recordPrivate(r, file, "x509.ParsePKCS1PrivateKey", key, err)
	case "PUBLIC KEY":
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			r.fail(file, "x509.ParsePKIXPublicKey", err)
			return
		}
		r.ok(file, "x509.ParsePKIXPublicKey", describeKey(key))
		m.public[file] = key
	default:
		r.fail(file, "pem", fmt.Errorf("unexpected PEM block %q", block.Type))
	}
}

func (m *material) recordPrivate(r *report, file, parser string, key crypto.PrivateKey, err error) {
	if err != nil {
		r.fail(file, parser, err)
		return
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		r.fail(file, parser, fmt.Errorf("%T cannot sign", key))
		return
	}
	r.ok(file, parser, describeKey(signer.Public()))
	m.private[file] = key
}

func describeCert(cert *x509.Certificate) string {
	return fmt.Sprintf("subject=%q issuer=%q ca=%t serial=%s notBefore=%d notAfter=%d",
		cert.Subject.String(), cert.Issuer.String(), cert.IsCA, cert.SerialNumber,
		cert.NotBefore.Unix(), cert.NotAfter.Unix())
}

func describeKey(key crypto.PublicKey) string {
	if ec, ok := key.(*ecdsa.PublicKey); ok {
		return "ECDSA " + ec.Curve.Params().Name
	}
	return fmt.Sprintf("%T", key)
}

// checkCert holds every certificate to what newer Go releases and kubeadm
// demand, and a CA to what a pre-placed kubeadm CA needs.
func checkCert(r *report, file string, cert *x509.Certificate, when time.Time) {
	if cert.SerialNumber.Sign() <= 0 {
		// Go 1.23 and later reject negative serials when parsing.
		r.fail(file, "serial", fmt.Errorf("serial %s is not positive", cert.SerialNumber))
	}
	if !cert.IsCA {
		return
	}
	var problems []string
	if !cert.BasicConstraintsValid {
		problems = append(problems, "no basic constraints")
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		problems = append(problems, "no keyCertSign key usage")
	}
	if len(cert.SubjectKeyId) == 0 {
		problems = append(problems, "no subject key identifier")
	}
	if len(problems) > 0 {
		r.fail(file, "CA extensions", errors.New(strings.Join(problems, ", ")))
	} else {
		r.ok(file, "CA extensions", fmt.Sprintf("basic constraints, keyCertSign, subject key id %x", cert.SubjectKeyId))
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: when,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	r.result(file, "CA valid at "+when.UTC().Format(time.RFC3339), "self-signed root", err)
}

// checkPairs loads NAME.crt with NAME.key and compares NAME.key with
// NAME.pub.
func checkPairs(r *report, m *material) {
	for _, file := range sortedKeys(m.private) {
		stem := strings.TrimSuffix(file, filepath.Ext(file))
		if certPEM, ok := m.pem[stem+".crt"]; ok {
			_, err := tls.X509KeyPair(certPEM, m.pem[file])
			r.result(stem+".{crt,key}", "tls.X509KeyPair", "certificate and key match", err)
		}
		if public, ok := m.public[stem+".pub"]; ok {
			var err error
			own := m.private[file].(crypto.Signer).Public()
			if !own.(interface{ Equal(crypto.PublicKey) bool }).Equal(public) {
				err = errors.New("the public key is not the private key's")
			}
			r.result(stem+".{key,pub}", "key pair", "public key matches", err)
		}
	}
}

func sortedKeys[V any](values map[string]V) []string {
	keys := make([]string, 0, len(values))
	for key := range values {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

func checkLeaves(r *report, m *material, caFile string, when time.Time) {
	roots, err := loadPool(caFile)
	if err != nil {
		r.fail(caFile, "CA pool", err)
		return
	}
	for _, file := range sortedKeys(m.certs) {
		if cert := m.certs[file]; !cert.IsCA {
			verifyClient(r, file, cert, roots, when)
		}
	}
}

func loadPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return poolFromPEM(data)
}

func poolFromPEM(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("no certificate could be parsed")
	}
	return pool, nil
}

func verifyClient(r *report, subject string, cert *x509.Certificate, roots *x509.CertPool, when time.Time) {
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: when,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	r.result(subject, "client auth at "+when.UTC().Format(time.RFC3339), "verified against the CA", err)
}

// kubeconfigFields are the kubeconfig keys the checker reads.
var kubeconfigFields = []string{"server", "certificate-authority-data", "client-certificate-data", "client-key-data"}

func checkKubeconfig(r *report, file string, when time.Time) {
	data, err := os.ReadFile(file)
	if err != nil {
		r.fail(file, "read", err)
		return
	}
	values, err := scanKubeconfig(string(data))
	if err != nil {
		r.fail(file, "kubeconfig", err)
		return
	}
	r.ok(file, "kubeconfig", "apiVersion v1, kind Config, one cluster and one user")
	server, err := url.Parse(values["server"])
	if err == nil && (server.Scheme != "https" || server.Host == "") {
		err = fmt.Errorf("server %q is not an https URL", values["server"])
	}
	r.result(file, "server", values["server"], err)
	decoded := map[string][]byte{}
	for _, field := range kubeconfigFields[1:] {
		raw, err := base64.StdEncoding.DecodeString(values[field])
		if err != nil {
			r.fail(file, field, fmt.Errorf("base64: %v", err))
			return
		}
		decoded[field] = raw
	}
	roots, err := poolFromPEM(decoded["certificate-authority-data"])
	if err != nil {
		r.fail(file, "certificate-authority-data", err)
		return
	}
	r.ok(file, "certificate-authority-data", "CA pool")
	pair, err := tls.X509KeyPair(decoded["client-certificate-data"], decoded["client-key-data"])
	if err != nil {
		r.fail(file, "tls.X509KeyPair", err)
		return
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		r.fail(file, "x509.ParseCertificate", err)
		return
	}
	r.ok(file, "tls.X509KeyPair", describeCert(leaf))
	checkCert(r, file, leaf, when)
	verifyClient(r, file, leaf, roots, when)
}

// scanKubeconfig finds the one value of each of kubeconfigFields and checks
// the top-level apiVersion and kind.
func scanKubeconfig(text string) (map[string]string, error) {
	values := map[string][]string{}
	top := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if key, value, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "-") {
			top[key] = strings.TrimSpace(value)
		}
		trimmed := strings.TrimPrefix(strings.TrimSpace(line), "- ")
		key, value, ok := strings.Cut(trimmed, ":")
		if ok {
			values[key] = append(values[key], strings.TrimSpace(value))
		}
	}
	if top["apiVersion"] != "v1" || top["kind"] != "Config" {
		return nil, fmt.Errorf("top level needs `apiVersion: v1` and `kind: Config`, has apiVersion %q and kind %q", top["apiVersion"], top["kind"])
	}
	found := map[string]string{}
	for _, field := range kubeconfigFields {
		if len(values[field]) != 1 || values[field][0] == "" {
			return nil, fmt.Errorf("expected one non-empty `%s`, found %d", field, len(values[field]))
		}
		found[field] = values[field][0]
	}
	return found, nil
}
