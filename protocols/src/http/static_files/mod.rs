//! Static-file serving helpers (filesystem, no sockets): stub.
