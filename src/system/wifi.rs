//! Wi-Fi for wpa_supplicant: the 256-bit key derived from a passphrase as `wpa_passphrase`
//! does (PBKDF2-HMAC-SHA1, 4096 iterations, the SSID as salt), and the configuration file the
//! init starts wpa_supplicant with. The passphrase itself is never written.

use std::num::NonZeroU32;

use crate::base::hex::{hex, is_hex64};

/// The key wpa_supplicant uses for `passphrase` on `ssid`, as 64 hex digits; a `psk` that is
/// already 64 hex digits is the key itself.
pub fn derive_psk(ssid: &str, psk: &str) -> String {
    if is_hex64(psk) {
        return psk.to_ascii_lowercase();
    }
    let mut key = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA1,
        NonZeroU32::new(4096).expect("not zero"),
        ssid.as_bytes(),
        psk.as_bytes(),
        &mut key,
    );
    hex(&key)
}

/// wpa_supplicant.conf for one network. The SSID is written as hex (any bytes, no quoting);
/// `key` None is an open network.
pub fn render(ssid: &str, key: Option<&str>, country: Option<&str>) -> String {
    let mut out = String::from("# Written by eyrie apply-boot-config from eyrie.toml [wifi].\n");
    out.push_str("ctrl_interface=DIR=/run/wpa_supplicant\n");
    if let Some(cc) = country {
        out.push_str(&format!("country={cc}\n"));
    }
    out.push_str("network={\n");
    out.push_str(&format!("\tssid={}\n", hex(ssid.as_bytes())));
    match key {
        Some(k) => out.push_str(&format!("\tpsk={k}\n")),
        None => out.push_str("\tkey_mgmt=NONE\n"),
    }
    out.push_str("}\n");
    out
}

/// The key of an earlier [`render`] for `ssid` (applied at an earlier boot, after which the
/// passphrase left eyrie.toml); None when the file is for another network or has none.
pub fn stored_key(conf: &str, ssid: &str) -> Option<String> {
    let field = |name: &str| {
        conf.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    if field("ssid")? != hex(ssid.as_bytes()) {
        return None;
    }
    field("psk").filter(|k| is_hex64(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_wpa_passphrase() {
        // IEEE 802.11i-2004 annex H.4.1 test vectors (what `wpa_passphrase` prints).
        assert_eq!(
            derive_psk("IEEE", "password"),
            "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
        );
        assert_eq!(
            derive_psk("ThisIsASSID", "ThisIsAPassword"),
            "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"
        );
        let key = "0DC0D6EB90555ED6419756B9A15EC3E3209B63DF707DD508D14581F8982721AF";
        assert_eq!(derive_psk("x", key), key.to_ascii_lowercase());
    }

    #[test]
    fn the_conf_keeps_the_key_not_the_passphrase() {
        let key = derive_psk("My \"Net\"", "passphrase!");
        let conf = render("My \"Net\"", Some(&key), Some("GB"));
        assert!(conf.contains("country=GB\n"), "{conf}");
        assert!(conf.contains(&format!("\tpsk={key}\n")), "{conf}");
        assert!(!conf.contains("passphrase!"));
        assert_eq!(stored_key(&conf, "My \"Net\""), Some(key));
        assert_eq!(stored_key(&conf, "Other"), None);
        assert_eq!(stored_key(&render("Open", None, None), "Open"), None);
    }
}
