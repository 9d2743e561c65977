// Command go-null-authorizer is the ext_authz floor in Go: a grpc-go server answering every
// envoy.service.auth.v3 Check with OK without looking at it, and grpc.health.v1 SERVING for the
// deployed cluster's health check (envoy/envoy.yaml). The bench's `floor_go` scenario puts it where
// `floor_grpcjs` puts the sidecar's own gRPC listener (bench/null-authorizer.ts): what it adds over
// bare Envoy is the ext_authz round trip with a compiled gRPC stack, the floor a Go authorizer
// (OPA-Envoy's stack) pays. Built by scripts/install-tools.sh bench into .tools/bin.
//
// Usage: go-null-authorizer <port>; prints "listening <port>" when ready, stops on SIGTERM.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

type allowEverything struct {
	authv3.UnimplementedAuthorizationServer
}

// One answer for every Check: OK, with an empty OkHttpResponse as the sidecar's floor sends.
var allowed = &authv3.CheckResponse{
	Status:       &status.Status{Code: 0},
	HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
}

func (allowEverything) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return allowed, nil
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	lis, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := grpc.NewServer()
	authv3.RegisterAuthorizationServer(server, allowEverything{})
	healthServer := health.NewServer()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthServer.SetServingStatus("envoy.service.auth.v3.Authorization", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(server, healthServer)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		done := make(chan struct{})
		go func() { server.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			server.Stop()
		}
	}()

	fmt.Printf("listening %d\n", lis.Addr().(*net.TCPAddr).Port)
	if err := server.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
