//! Who is on the other end of a TLS connection: the common name (CN) of the verified client
//! certificate. etcd takes it as the user name of a request when auth is on and the request
//! carries no token (`AuthInfoFromTLS`); the auth service will do the same with
//! [`ClientIdentity`], which `grpc::connection` puts into every request's extensions.
//!
//! The CN is read with a small DER walk (Certificate → tbsCertificate → subject → the
//! attribute 2.5.4.3), enough for this one field; webpki has already verified the certificate
//! before anyone asks. Like Go's `pkix.Name`, when a subject has several CNs the last one wins.

use rustls::pki_types::CertificateDer;

/// The identity a verified client certificate gives a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate's subject CN (`None` when it has none).
    pub common_name: Option<String>,
}

impl ClientIdentity {
    /// The identity of the end-entity certificate of a verified chain.
    pub fn of_certificate(end_entity: &CertificateDer<'_>) -> ClientIdentity {
        ClientIdentity {
            common_name: common_name_of(end_entity),
        }
    }
}

const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;
const TAG_VERSION: u8 = 0xA0;
const TAG_UTF8_STRING: u8 = 0x0C;
const TAG_PRINTABLE_STRING: u8 = 0x13;
const TAG_T61_STRING: u8 = 0x14;
const TAG_IA5_STRING: u8 = 0x16;
const TAG_BMP_STRING: u8 = 0x1E;
/// The OID 2.5.4.3 (id-at-commonName), DER content bytes.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The subject CN of a DER certificate, `None` if it has none or the DER does not parse.
pub fn common_name_of(certificate: &CertificateDer<'_>) -> Option<String> {
    let (tag, certificate_body, _) = read_element(certificate.as_ref())?;
    expect(tag, TAG_SEQUENCE)?;
    let (tag, tbs, _) = read_element(certificate_body)?;
    expect(tag, TAG_SEQUENCE)?;
    let mut rest = tbs;
    let (tag, _, after) = read_element(rest)?;
    if tag == TAG_VERSION {
        rest = after;
    }
    // serial, signature algorithm, issuer, validity; then the subject.
    for _ in 0..4 {
        let (_, _, after) = read_element(rest)?;
        rest = after;
    }
    let (tag, subject, _) = read_element(rest)?;
    expect(tag, TAG_SEQUENCE)?;
    let mut common_name = None;
    let mut names = subject;
    while !names.is_empty() {
        let (tag, set, after) = read_element(names)?;
        expect(tag, TAG_SET)?;
        names = after;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (tag, attribute, after) = read_element(attributes)?;
            expect(tag, TAG_SEQUENCE)?;
            attributes = after;
            let (tag, oid, value) = read_element(attribute)?;
            expect(tag, TAG_OID)?;
            if oid == OID_COMMON_NAME {
                let (tag, text, _) = read_element(value)?;
                common_name = Some(decode_string(tag, text)?);
            }
        }
    }
    common_name
}

fn expect(tag: u8, wanted: u8) -> Option<()> {
    (tag == wanted).then_some(())
}

fn decode_string(tag: u8, bytes: &[u8]) -> Option<String> {
    match tag {
        TAG_UTF8_STRING | TAG_PRINTABLE_STRING | TAG_IA5_STRING | TAG_T61_STRING => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        TAG_BMP_STRING => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

/// One DER element: (tag, content, the bytes after it). Only single-byte tags and definite
/// lengths up to 4 length bytes, as X.509 uses; anything else is `None`.
fn read_element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        (length, &rest[count..])
    };
    if rest.len() < length {
        return None;
    }
    Some((tag, &rest[..length], &rest[length..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_with(names: &[(rcgen::DnType, &str)]) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in names {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").der().clone()
    }

    #[test]
    fn reads_the_common_name_among_other_attributes() {
        let certificate = certificate_with(&[
            (rcgen::DnType::OrganizationName, "system:masters"),
            (rcgen::DnType::CommonName, "kube-apiserver-etcd-client"),
        ]);
        assert_eq!(
            common_name_of(&certificate).as_deref(),
            Some("kube-apiserver-etcd-client")
        );
    }

    #[test]
    fn no_common_name_and_garbage_give_none() {
        let certificate = certificate_with(&[(rcgen::DnType::OrganizationName, "etcd")]);
        assert_eq!(common_name_of(&certificate), None);
        assert_eq!(
            common_name_of(&CertificateDer::from(vec![0x30, 0x82])),
            None
        );
        let mut truncated = certificate_with(&[(rcgen::DnType::CommonName, "x")]).to_vec();
        truncated.truncate(40);
        assert_eq!(common_name_of(&CertificateDer::from(truncated)), None);
    }
}
