// testbed-http is the test bed's web server on loopback. It serves, as asked:
//   - the bare repositories under -git-root over git's smart HTTP protocol, by running `git http-backend` (git's
//     own server side) as a CGI program for each request, pushes allowed (the stand-in for a Git host);
//   - the files of -static under /charts/ (a Helm chart repository: index.yaml and .tgz files);
//
// over HTTPS when -tls-cert and -tls-key are given, plain HTTP otherwise. It writes the bound address to -addr-file
// once it listens, so the harness can ask for port 0.
//
//	testbed-http [-git-root DIR] [-static DIR] [-tls-cert F -tls-key F] -listen 127.0.0.1:0 -addr-file FILE
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
)

func main() {
	gitRoot := flag.String("git-root", "", "serve the bare repositories (NAME.git) under this directory")
	static := flag.String("static", "", "serve this directory's files under /charts/")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	addrFile := flag.String("addr-file", "", "write the bound host:port here once listening")
	tlsCert := flag.String("tls-cert", "", "PEM certificate: serve HTTPS")
	tlsKey := flag.String("tls-key", "", "PEM private key of -tls-cert")
	flag.Parse()

	mux := http.NewServeMux()
	if *gitRoot != "" {
		abs, err := filepath.Abs(*gitRoot)
		if err != nil {
			log.Fatal(err)
		}
		git, err := exec.LookPath("git")
		if err != nil {
			log.Fatal("testbed-http: git is not on PATH")
		}
		mux.Handle("/", &cgi.Handler{
			Path: git,
			Args: []string{"http-backend"},
			Env: []string{
				"GIT_PROJECT_ROOT=" + abs,
				"GIT_HTTP_EXPORT_ALL=1",
				"REMOTE_USER=testbed", // http-backend refuses receive-pack (push) to anonymous users
				"GIT_CONFIG_GLOBAL=/dev/null",
				"GIT_CONFIG_NOSYSTEM=1",
			},
		})
	}
	if *static != "" {
		mux.Handle("/charts/", http.StripPrefix("/charts/", http.FileServer(http.Dir(*static))))
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Fprintf(os.Stderr, "testbed-http: listening on %s (git %q, static %q, tls %v)\n", ln.Addr(), *gitRoot, *static, *tlsCert != "")
	if *tlsCert != "" {
		log.Fatal(http.ServeTLS(ln, mux, *tlsCert, *tlsKey))
	}
	log.Fatal(http.Serve(ln, mux))
}
