# A websocket echo server in core Perl (the default sandbox image has perl-base, no Python):
# answers the handshake (RFC 6455) and sends every text/binary frame back; a ping gets a pong.
# Usage: perl ws_echo.pl PORT   (one connection at a time, until killed)
use strict;
use warnings;
use IO::Socket::INET;

my $server = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1)
    or die "listen: $!";
print "listening on $ARGV[0]\n";
$| = 1;

sub base64 {
    my @alphabet = ('A' .. 'Z', 'a' .. 'z', '0' .. '9', '+', '/');
    my ($bits, $out) = (unpack("B*", shift), "");
    while ($bits =~ /(.{1,6})/g) { $out .= $alphabet[oct("0b" . substr($1 . "00000", 0, 6))]; }
    return $out . "=" x ((4 - length($out) % 4) % 4);
}
while (my $c = $server->accept) {
    binmode $c;
    my $head = "";
    while (my $line = <$c>) { $head .= $line; last if $line eq "\r\n"; }
    my ($key) = $head =~ /^Sec-WebSocket-Key:\s*([A-Za-z0-9+\/=]+)/mi;
    if (!$key) { print $c "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"; close $c; next; }
    my $hex = `printf %s '$key' 258EAFA5-E914-47DA-95CA-C5AB0DC85B11 | sha1sum`;
    my $accept = base64(pack("H*", substr($hex, 0, 40)));
    print $c "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Accept: $accept\r\n\r\n";
    while (1) {
        read($c, my $h, 2) == 2 or last;
        my ($b0, $b1) = unpack("CC", $h);
        my ($op, $len) = ($b0 & 0x0f, $b1 & 0x7f);
        if ($len == 126) { read($c, my $e, 2); $len = unpack("n", $e); }
        elsif ($len == 127) { read($c, my $e, 8); $len = unpack("Q>", $e); }
        my $mask = "";
        read($c, $mask, 4) if $b1 & 0x80;
        my $data = "";
        read($c, $data, $len) if $len;
        $data ^= substr($mask x (int($len / 4) + 1), 0, $len) if $mask ne "";
        last if $op == 8;
        my $out = $op == 9 ? 10 : $op;
        my $frame = pack("C", 0x80 | $out);
        $frame .= $len < 126 ? pack("C", $len) : $len < 65536 ? pack("Cn", 126, $len) : pack("CQ>", 127, $len);
        print $c $frame . $data;
    }
    close $c;
}
