package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	rf := filepath.Join(dir, "read")
	af := filepath.Join(dir, "admin")
	if err := os.WriteFile(rf, []byte("# read tokens\nr1\n\n r2 \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(af, []byte("a1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-read-token", "r0", "-read-token-file", rf, "-admin-token-file", af, "-include-loop", "-devices", "loop1,loop2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.ReadTokens, ",") != "r0,r1,r2" || strings.Join(o.AdminTokens, ",") != "a1" || !o.IncludeLoop || len(o.Devices) != 2 {
		t.Fatalf("options %+v", o)
	}
	d := defaultOptions()
	if o.Listen != DefaultListen || o.SmartInterval != d.SmartInterval || o.BodyLimit != 64<<10 {
		t.Fatalf("defaults changed: %+v", o)
	}
	// Burn-in policy: slow regions and the temperature ceiling.
	if o.FailSlowRegions || o.BurninMaxTemp != 0 || o.BurninSMARTEvery != 5*time.Minute {
		t.Fatalf("burn-in defaults: fail-slow-regions %v, max temp %d, SMART every %v", o.FailSlowRegions, o.BurninMaxTemp, o.BurninSMARTEvery)
	}
	o, err = parseFlags([]string{"-fail-slow-regions", "-burnin-max-temp", "55", "-burnin-smart-interval", "30s"}, io.Discard)
	if err != nil || !o.FailSlowRegions || o.BurninMaxTemp != 55 || o.BurninSMARTEvery != 30*time.Second {
		t.Fatalf("burn-in flags: %v %+v", err, o)
	}
	for _, bad := range [][]string{
		{"-tls-cert", "x.pem"},
		{"-read-token-file", filepath.Join(dir, "missing")},
		{"-bogus"},
		{"stray"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# nothing\n"), 0o600)
	if _, err := parseFlags([]string{"-admin-token-file", empty}, io.Discard); err == nil {
		t.Error("a token file without tokens was accepted")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hwmgr test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestDaemonTLS serves the API over HTTPS with a certificate from flags.
func TestDaemonTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	td := startDaemon(t, dir, func(o *options) {
		o.TLSCert, o.TLSKey, o.Smartctl, o.NoUevents = cert, key, "", true
	})
	url := strings.Replace(td.url, "http://", "https://", 1)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", url+"/v1/inventory", nil)
	req.Header.Set("Authorization", "Bearer "+tRead)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("HTTPS inventory: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	// Plain HTTP on the TLS port is refused.
	resp, err = http.Get(td.url + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered on the TLS listener")
		}
	}
}
