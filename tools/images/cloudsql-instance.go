// Command cloudsql-instance stands in for Google's side of ONE Cloud SQL
// instance, so that the real Cloud SQL Auth Proxy v2 can run on a node with
// no route to Google (tests/node). Go standard library only.
//
// It serves, over plain HTTP on -api-address, the two SQL Admin API calls the
// proxy's connector (cloud.google.com/go/cloudsqlconn) makes for an instance:
//
//	GET  /sql/v1beta4/projects/P/instances/I/connectSettings
//	POST /sql/v1beta4/projects/P/instances/I:generateEphemeralCert
//
// (the proxy is pointed here with --sqladmin-api-endpoint=http://... and
// authenticates with --token=...: every call must carry that bearer token).
// connectSettings answers what the connector checks: the instance's region
// (it refuses a connection name whose region differs), backendType
// SECOND_GEN, a PRIMARY (public) IP address, the server CA certificate and
// serverCaMode GOOGLE_MANAGED_INTERNAL_CA with no DNS name, so the connector
// verifies the server certificate's CN "PROJECT:INSTANCE". generateEphemeralCert
// signs the proxy's public key with this instance's CA, valid one hour, as
// Cloud SQL does.
//
// On -tls-address (3307, the port the connector always dials) it terminates
// the proxy's TLS 1.3 like Cloud SQL's server-side proxy: a client
// certificate signed by the instance CA is required, and the decrypted stream
// is relayed to -backend (a MariaDB standing in for the MySQL server).
//
// The CA and the server certificate are made at start, in memory. The
// expected token is read from the environment variable CLOUDSQL_TOKEN and is
// never logged. Every API call and every relayed connection is logged on
// stderr, one line each.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type instance struct {
	project, region, name string
	address               string // announced as the PRIMARY IP address
	databaseVersion       string
	token                 []byte
	backend               string

	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	caPEM    string
	server   tls.Certificate
	conns    atomic.Int64
	certsOut atomic.Int64
}

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	log.SetPrefix("cloudsql-instance: ")
	connName := flag.String("instance", "", "instance connection name PROJECT:REGION:INSTANCE (required)")
	apiAddr := flag.String("api-address", ":8080", "address of the SQL Admin API (plain HTTP)")
	tlsAddr := flag.String("tls-address", ":3307", "address of the server-side proxy (TLS, client certificate required)")
	backend := flag.String("backend", "", "host:port the decrypted connections are relayed to (required)")
	address := flag.String("address", os.Getenv("POD_IP"), "IP address announced as the instance's PRIMARY address (default $POD_IP)")
	version := flag.String("database-version", "MYSQL_8_0", "databaseVersion in connectSettings")
	flag.Parse()

	parts := strings.Split(*connName, ":")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		log.Fatalf("-instance must be PROJECT:REGION:INSTANCE, got %q", *connName)
	}
	if *backend == "" || *address == "" {
		log.Fatal("-backend and -address (or $POD_IP) are required")
	}
	token := os.Getenv("CLOUDSQL_TOKEN")
	if token == "" {
		log.Fatal("CLOUDSQL_TOKEN (the bearer token the proxy must send) is empty")
	}
	in := &instance{project: parts[0], region: parts[1], name: parts[2], address: *address,
		databaseVersion: *version, token: []byte(token), backend: *backend}
	if err := in.makeCertificates(); err != nil {
		log.Fatalf("certificates: %v", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /sql/v1beta4/projects/{project}/instances/{instance}/connectSettings", in.connectSettings)
	// "{instance}:generateEphemeralCert" is one path segment: matched whole, split below
	mux.HandleFunc("POST /sql/v1beta4/projects/{project}/instances/{call}", in.generateEphemeralCert)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("api: %s %s: not served (404)", r.Method, r.URL.Path)
		apiError(w, http.StatusNotFound, "not served by this stand-in")
	})
	api := &http.Server{Addr: *apiAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	cfg := &tls.Config{
		Certificates: []tls.Certificate{in.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool(in.ca),
		MinVersion:   tls.VersionTLS13,
	}
	ln, err := tls.Listen("tcp", *tlsAddr, cfg)
	if err != nil {
		log.Fatalf("listen %s: %v", *tlsAddr, err)
	}
	go in.serveTLS(ln)
	go func() {
		if err := api.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("api: %v", err)
		}
	}()
	log.Printf("instance %s:%s:%s (%s) at %s: API on %s, TLS on %s relayed to %s",
		in.project, in.region, in.name, in.databaseVersion, in.address, *apiAddr, *tlsAddr, in.backend)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	log.Printf("stopping: %d ephemeral certificates signed, %d connections relayed", in.certsOut.Load(), in.conns.Load())
}

func pool(ca *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca)
	return p
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// makeCertificates: the instance CA and the server certificate (CN PROJECT:INSTANCE).
func (in *instance) makeCertificates() error {
	var err error
	if in.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	now := time.Now()
	sn, err := serial()
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "Cloud SQL stand-in CA " + in.project + ":" + in.name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &in.caKey.PublicKey, in.caKey)
	if err != nil {
		return err
	}
	if in.ca, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	in.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if sn, err = serial(); err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: sn,
		// what the connector checks when the instance has no DNS name
		Subject:     pkix.Name{CommonName: in.project + ":" + in.name},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if der, err = x509.CreateCertificate(rand.Reader, srvTmpl, in.ca, &key.PublicKey, in.caKey); err != nil {
		return err
	}
	in.server = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return nil
}

// ---------------------------------------------------------------- the API

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]any{"code": code, "message": msg, "errors": []any{map[string]any{"message": msg}}},
	})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

// authorized: the bearer token the proxy was given with --token.
func (in *instance) authorized(w http.ResponseWriter, r *http.Request, call string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), in.token) != 1 {
		log.Printf("api: %s: no or wrong bearer token (401)", call)
		apiError(w, http.StatusUnauthorized, "Request had invalid authentication credentials.")
		return false
	}
	return true
}

// known: this instance (the real API answers 404 for an unknown one; the
// region is not in the path, the connector compares it with connectSettings').
func (in *instance) known(w http.ResponseWriter, project, name, call string) bool {
	if project != in.project || name != in.name {
		log.Printf("api: %s %s:%s: unknown instance (404)", call, project, name)
		apiError(w, http.StatusNotFound, "The Cloud SQL instance does not exist.")
		return false
	}
	return true
}

func (in *instance) connectSettings(w http.ResponseWriter, r *http.Request) {
	const call = "connectSettings"
	if !in.authorized(w, r, call) || !in.known(w, r.PathValue("project"), r.PathValue("instance"), call) {
		return
	}
	log.Printf("api: %s %s:%s (200)", call, in.project, in.name)
	reply(w, map[string]any{
		"kind":            "sql#connectSettings",
		"region":          in.region,
		"backendType":     "SECOND_GEN",
		"databaseVersion": in.databaseVersion,
		"ipAddresses":     []any{map[string]any{"type": "PRIMARY", "ipAddress": in.address}},
		"serverCaCert": map[string]any{
			"kind": "sql#sslCert", "cert": in.caPEM, "instance": in.name,
			"commonName": in.ca.Subject.CommonName,
		},
		"serverCaMode": "GOOGLE_MANAGED_INTERNAL_CA",
	})
}

func (in *instance) generateEphemeralCert(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("call"), ":generateEphemeralCert")
	if !ok {
		log.Printf("api: POST %s: not served (404)", r.URL.Path)
		apiError(w, http.StatusNotFound, "not served by this stand-in")
		return
	}
	const call = "generateEphemeralCert"
	if !in.authorized(w, r, call) || !in.known(w, r.PathValue("project"), name, call) {
		return
	}
	var req struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		log.Printf("api: %s: bad body: %v (400)", call, err)
		apiError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	block, _ := pem.Decode([]byte(req.PublicKey))
	if block == nil {
		log.Printf("api: %s: no PEM public key (400)", call)
		apiError(w, http.StatusBadRequest, "public_key is not a PEM block")
		return
	}
	// the connector labels it "RSA PUBLIC KEY" but sends PKIX (SubjectPublicKeyInfo)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		log.Printf("api: %s: bad public key: %v (400)", call, err)
		apiError(w, http.StatusBadRequest, "public_key cannot be parsed")
		return
	}
	sn, err := serial()
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "ephemeral client of " + in.project + ":" + in.name},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(time.Hour), // Cloud SQL's ephemeral certificates last one hour
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, in.ca, pub, in.caKey)
	if err != nil {
		log.Printf("api: %s: signing: %v (500)", call, err)
		apiError(w, http.StatusInternalServerError, "cannot sign")
		return
	}
	n := in.certsOut.Add(1)
	log.Printf("api: %s %s:%s: client certificate %d signed, serial %x, valid until %s (200)",
		call, in.project, in.name, n, sn, tmpl.NotAfter.Format(time.RFC3339))
	reply(w, map[string]any{"ephemeralCert": map[string]any{
		"kind": "sql#sslCert", "cert": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		"certSerialNumber": sn.String(), "instance": in.name, "commonName": tmpl.Subject.CommonName,
		"expirationTime": tmpl.NotAfter.UTC().Format(time.RFC3339),
	}})
}

// ------------------------------------------------------- the server side

func (in *instance) serveTLS(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatalf("tls accept: %v", err)
		}
		go in.relay(c.(*tls.Conn))
	}
}

func (in *instance) relay(c *tls.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if err := c.Handshake(); err != nil {
		log.Printf("tls: %s: handshake refused: %v", c.RemoteAddr(), err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	client := c.ConnectionState().PeerCertificates[0]
	up, err := net.DialTimeout("tcp", in.backend, 10*time.Second)
	if err != nil {
		log.Printf("tls: %s: backend %s: %v", c.RemoteAddr(), in.backend, err)
		return
	}
	defer up.Close()
	n := in.conns.Add(1)
	log.Printf("tls: connection %d from %s, client certificate serial %x: relayed to %s",
		n, c.RemoteAddr(), client.SerialNumber, in.backend)
	var once sync.Once
	done := make(chan struct{})
	stop := func() { once.Do(func() { close(done) }) }
	go func() { _, _ = io.Copy(up, c); stop() }()
	go func() { _, _ = io.Copy(c, up); stop() }()
	<-done
}
