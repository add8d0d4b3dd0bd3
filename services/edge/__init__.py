"""The edge: the one public service, transcoding REST/JSON to gRPC from `google.api.http`.

One concern per module, as grpc-gateway's runtime/: routing (path templates), query (query
parameters and path values), marshal (bodies), metadata (headers ↔ metadata), errors (the
code table and Status JSON), auth (access levels), server (HTTP/1.1), gateway (per request).
"""
