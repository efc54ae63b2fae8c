# portstorm image for distributed runs (README: "Beyond one machine: Kubernetes").
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /portstorm ./cmd/portstorm

FROM gcr.io/distroless/static-debian12
COPY --from=build /portstorm /usr/local/bin/portstorm
ENTRYPOINT ["/usr/local/bin/portstorm"]
