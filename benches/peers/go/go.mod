module ringwork/benches/peers/go

go 1.19
