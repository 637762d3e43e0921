"""A real gRPC peer (grpcio) for the reverse proxy's HTTP/2 tests, without generated code:
methods with raw-bytes (de)serializers.

  grpc_peer.py server          serves /test.Echo/Unary (echo) and /test.Echo/Stream (the
                               request back as 5 messages); prints "port N" when up, and
                               serves until stdin closes
  grpc_peer.py client ADDR     calls both through ADDR (h2c, insecure); prints "ok"
"""
import sys
from concurrent import futures

import grpc


def identity(data):
    return data


def unary(request, context):
    context.set_trailing_metadata((("x-served-by", "grpcio"),))
    return b"echo:" + request


def stream(request, context):
    for i in range(5):
        yield b"%d:" % i + request


def serve():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=identity, response_serializer=identity
            ),
            "Stream": grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=identity, response_serializer=identity
            ),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("port", port, flush=True)
    sys.stdin.read()
    server.stop(0)


def client(addr):
    with grpc.insecure_channel(addr) as channel:
        call = channel.unary_unary("/test.Echo/Unary", request_serializer=identity, response_deserializer=identity)
        payload = bytes(range(256)) * 400
        reply, details = call.with_call(payload, timeout=20)
        assert reply == b"echo:" + payload, len(reply)
        trailing = dict(details.trailing_metadata())
        assert trailing.get("x-served-by") == "grpcio", trailing
        streamed = channel.unary_stream("/test.Echo/Stream", request_serializer=identity, response_deserializer=identity)
        replies = list(streamed(b"hi", timeout=20))
        assert replies == [b"%d:hi" % i for i in range(5)], replies
    print("ok")


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve()
    else:
        client(sys.argv[2])
