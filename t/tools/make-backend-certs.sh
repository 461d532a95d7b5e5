#!/bin/sh
# Certificates for the TLS backends of t/tls_backend.t, made by t/TEST.PL
# once per checkout into DIR: a CA and, signed by it, good.pem (localhost
# and 127.0.0.1), wrongname.pem (other.example), expired.pem (2020),
# members.pem (rproxy-multi.test only, not its addresses: t/tls_group.t)
# and client.pem (mod_rproxy's own, for SSLProxyMachineCertificateFile); a
# second CA's untrusted.pem; and a self-signed selfsigned.pem (localhost).
set -e
dir=$1
mkdir -p "$dir"
cd "$dir"
o=/usr/bin/openssl
key() { $o genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {   # ca NAME
    key "$1.key"
    $o req -x509 -new -key "$1.key" -days 3650 -subj "/CN=rproxy test $1" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign \
        -out "$1.pem"
}
# leaf NAME CA SAN [extra x509 options]
leaf() {
    name=$1 issuer=$2 san=$3; shift 3
    key "$name.key"
    $o req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" > "$name.ext"
    $o x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" \
        -CAcreateserial -days 3650 -extfile "$name.ext" -out "$name.pem" "$@" 2>/dev/null
}
ca ca
ca otherca
leaf good ca "DNS:localhost,IP:127.0.0.1"
leaf wrongname ca "DNS:other.example"
leaf members ca "DNS:rproxy-multi.test"
leaf untrusted otherca "DNS:localhost,IP:127.0.0.1"
leaf client ca "DNS:rproxy-client"
cat client.pem client.key > client-bundle.pem
# Expired: openssl ca takes explicit dates (x509 -req cannot before 3.4).
key expired.key
$o req -new -key expired.key -subj /CN=expired -out expired.csr
mkdir -p cadb && : > cadb/index.txt && echo 01 > cadb/serial
cat > cadb/ca.cnf <<CNF
[ca]
default_ca = d
[d]
database = cadb/index.txt
serial = cadb/serial
new_certs_dir = cadb
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = p
copy_extensions = none
x509_extensions = e
[p]
commonName = supplied
[e]
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
$o ca -batch -config cadb/ca.cnf -in expired.csr -out expired.pem -notext \
    -startdate 20200101000000Z -enddate 20200201000000Z 2>/dev/null
$o req -x509 -new -key good.key -days 3650 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -out selfsigned.pem
cp good.key selfsigned.key
rm -f ./*.csr ./*.ext ./*.srl
chmod 0644 ./*.pem ./*.key
