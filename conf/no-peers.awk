# Comment out every top-level peer section and the node-name line of
# psync.conf.example: the result is the configuration a fresh install gets,
# which names no peer (so psyncd -t passes before any key exists) and takes
# the host name as its node name. The MEPP listener starts disabled, since
# without a MEPP peer it would refuse every client.
BEGIN {
	print "# The default configuration of a new installation: no peers yet."
	print "# psyncctl init writes a configuration for this host; or uncomment"
	print "# and edit the peer sections below (psync.conf(5))."
	print ""
}
/^peer[ \t]/ { inpeer = 1 }
/^listen[ \t]+mepp[ \t]/ { inmepp = 1 }
inmepp && /^[ \t]*enabled[ \t]*=/ {
	sub(/=.*/, "= false\t# true once a mepp peer is configured")
}
inmepp && /^}/ { inmepp = 0 }
inpeer || /^node-name[ \t]*=/ {
	print "#" $0
	if (inpeer && /^}/)
		inpeer = 0
	next
}
{ print }
