# Sourced by depmod-tx's shell entry points (hooks/depmod, hooks/depmod-divert), which decide
# before Node.js starts. depmod_tx_setting KEY prints the value of the last `KEY = value` line of
# ROOT/etc/depmod-tx.conf (src/txn/settings.ts reads the same file; it reports bad lines), or
# nothing. ROOT is ${DPKG_ROOT} (dpkg --root with --force-script-chrootless).
depmod_tx_setting() {
	sed -n "s/#.*//; s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\\([a-z-]*\\)[[:space:]]*\$/\\1/p" "${DPKG_ROOT:-}/etc/depmod-tx.conf" 2>/dev/null | tail -n 1
}
