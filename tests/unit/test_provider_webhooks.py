"""Provider webhooks: what gets suppressed, retried or recorded, and which requests are refused.

Every signature here is made the way the provider documents it, with keys generated for the test:
an RSA key and self-signed certificate standing in for the SNS signing certificate, an EC P-256
key for SendGrid, an HMAC key for Mailgun, HTTP Basic credentials for Postmark.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from newsletter.delivery.events import Event
from newsletter.delivery.providers import PayloadError, SesProvider, SignatureError
from newsletter.delivery.providers.mailgun import mailgun_events
from newsletter.delivery.providers.postmark import postmark_events
from newsletter.delivery.providers.sendgrid import sendgrid_events
from newsletter.delivery.providers.ses import ses_events

WEBHOOKS = Path(__file__).resolve().parent.parent / "data" / "webhooks"


def sample(name: str):
    return json.loads((WEBHOOKS / name).read_text())


def summary(events: list[Event]) -> list[tuple]:
    return [(e.event_id, e.kind, e.recipient, e.token) for e in events]


def assert_well_formed(events: list[Event]) -> None:
    for event in events:
        assert event.occurred_at.utcoffset() == timedelta(0)
        assert "\n" not in event.detail and "\r" not in event.detail
        assert len(event.detail) <= 500


# --- SES through SNS -----------------------------------------------------------------------------

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-feedback"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000.pem"
SUBSCRIBE_URL = (
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
    f"&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e2425dacbba"
)


def make_cert(key: rsa.RSAPrivateKey, *, not_before: datetime, not_after: datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def sns_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def sns_cert(sns_key) -> bytes:
    now = datetime.now(UTC)
    return make_cert(sns_key, not_before=now - timedelta(days=1), not_after=now + timedelta(days=1))


class FakeFetcher:
    """Stands in for the HTTPS GET of the signing certificate and records what was asked."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.urls: list[str] = []

    def fetch(self, url: str) -> bytes:
        self.urls.append(url)
        return self.pem


@pytest.fixture
def fetcher(sns_cert) -> FakeFetcher:
    return FakeFetcher(sns_cert)


def string_to_sign(message: dict) -> bytes:
    """The AWS-documented string: fixed keys in this order, each as ``key\\nvalue\\n``."""
    if message["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()


def sign_sns(message: dict, key: rsa.RSAPrivateKey, version: str = "1") -> dict:
    # SignatureVersion 1 is SHA1withRSA by definition; SNS topics still default to it.
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
    signature = key.sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
    return {**message, "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode()}


def notification(payload, *, message_id="22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", **extra) -> dict:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": payload if isinstance(payload, str) else json.dumps(payload),
        "Timestamp": "2016-01-27T14:59:39.000Z",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&x=1",
        **extra,
    }


def confirmation(kind="SubscriptionConfirmation", subscribe_url=SUBSCRIBE_URL) -> dict:
    return {
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2425dacbba",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.\n"
                   "To confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": subscribe_url,
        "Timestamp": "2012-04-26T20:45:04.751Z",
        "SigningCertURL": CERT_URL,
    }


def body(message: dict) -> bytes:
    return json.dumps(message).encode()


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_permanent_bounce_suppresses_every_bounced_recipient(sns_key, fetcher, version):
    signed = sign_sns(notification(sample("ses_bounce_permanent.json")), sns_key, version)

    events, subscribe_url = ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher)

    assert subscribe_url is None
    mid = signed["MessageId"]
    assert summary(events) == [
        (f"{mid}:0", "hard_bounce", "jane@example.com", "tok_Jane-0001"),
        (f"{mid}:1", "hard_bounce", "richard@example.com", "tok_Jane-0001"),
    ]
    assert events[0].source == "ses"
    assert events[0].occurred_at == datetime(2016, 1, 27, 14, 59, 38, 237000, tzinfo=UTC)
    assert events[0].detail.startswith("Permanent/General: 5.1.1 smtp; 550 5.1.1")
    assert_well_formed(events)
    assert fetcher.urls == [CERT_URL]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("ses_bounce_transient.json", [("soft_bounce", "full@example.org", None)]),
        ("ses_complaint.json", [("complaint", "angry@example.net", "tok_Angry-0002")]),
        ("ses_delivery.json", [("delivered", "reader@example.com", "tok_Reader-0003")]),
        ("ses_delivery_delay.json", [("deferred", "slow@example.com", "tok_Slow-0004")]),
    ],
)
def test_ses_notification_kinds(sns_key, fetcher, fixture, expected):
    signed = sign_sns(notification(sample(fixture), message_id="m-1"), sns_key, "2")

    events, _ = ses_events(body(signed), topic_arns=[TOPIC], fetcher=fetcher)

    assert [(e.kind, e.recipient, e.token) for e in events] == expected
    assert [e.event_id for e in events] == ["m-1:0"]
    assert_well_formed(events)


def test_ses_undetermined_bounce_is_soft_and_not_spam_feedback_is_not_a_complaint(
    sns_key, fetcher
):
    undetermined = sample("ses_bounce_permanent.json")
    undetermined["bounce"]["bounceType"] = "Undetermined"
    not_spam = sample("ses_complaint.json")
    not_spam["complaint"]["complaintFeedbackType"] = "not-spam"

    bounced, _ = ses_events(body(sign_sns(notification(undetermined), sns_key)),
                            topic_arns={TOPIC}, fetcher=fetcher)
    complained, _ = ses_events(body(sign_sns(notification(not_spam), sns_key)),
                               topic_arns={TOPIC}, fetcher=fetcher)

    assert {e.kind for e in bounced} == {"soft_bounce"}
    assert [e.kind for e in complained] == ["ignored"]


def test_ses_event_types_we_do_not_act_on_are_ignored_not_refused(sns_key, fetcher):
    signed = sign_sns(notification(sample("ses_open.json"), message_id="open-1"), sns_key)
    setup = sign_sns(notification({"notificationType": "AmazonSnsSubscriptionSucceeded",
                                   "message": "You have successfully subscribed"},
                                  message_id="setup-1"), sns_key)

    opened, _ = ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher)
    succeeded, _ = ses_events(body(setup), topic_arns={TOPIC}, fetcher=fetcher)

    assert summary(opened) == [("open-1", "ignored", None, "tok_Reader-0003")]
    assert summary(succeeded) == [("setup-1", "ignored", None, None)]


def test_ses_token_that_does_not_match_the_pattern_is_dropped(sns_key, fetcher):
    for bad in ["abc", "x" * 65, "tok en", "tok;DROP", ""]:
        payload = sample("ses_delivery.json")
        payload["mail"]["headers"] = [{"name": "X-Newsletter-Token", "value": bad}]
        events, _ = ses_events(body(sign_sns(notification(payload), sns_key)),
                               topic_arns={TOPIC}, fetcher=fetcher)
        assert events[0].token is None, bad
        assert events[0].kind == "delivered"


def test_ses_subject_is_part_of_the_signed_string(sns_key, fetcher):
    signed = sign_sns(notification(sample("ses_delivery.json"), Subject="Amazon SES Email Event"),
                      sns_key)
    events, _ = ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher)
    assert [e.kind for e in events] == ["delivered"]

    with pytest.raises(SignatureError):
        ses_events(body({**signed, "Subject": "changed"}), topic_arns={TOPIC}, fetcher=fetcher)
    with pytest.raises(SignatureError):
        ses_events(body({k: v for k, v in signed.items() if k != "Subject"}),
                   topic_arns={TOPIC}, fetcher=fetcher)


def test_ses_tampered_message_is_refused(sns_key, fetcher):
    signed = sign_sns(notification(sample("ses_complaint.json")), sns_key)
    forged = json.loads(signed["Message"])
    forged["complaint"]["complainedRecipients"] = [{"emailAddress": "victim@example.com"}]

    with pytest.raises(SignatureError):
        ses_events(body({**signed, "Message": json.dumps(forged)}), topic_arns={TOPIC},
                   fetcher=fetcher)


def test_ses_signature_from_another_key_or_version_is_refused(sns_key, fetcher):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    by_other = sign_sns(notification(sample("ses_bounce_permanent.json")), other, "2")
    v1_labelled_v2 = {**sign_sns(notification(sample("ses_bounce_permanent.json")), sns_key, "1"),
                      "SignatureVersion": "2"}
    garbage = {**by_other, "Signature": "not base64!"}
    missing = {k: v for k, v in by_other.items() if k != "Signature"}

    for message in (by_other, v1_labelled_v2, garbage, missing):
        with pytest.raises(SignatureError):
            ses_events(body(message), topic_arns={TOPIC}, fetcher=fetcher)


def test_ses_unknown_signature_version_is_refused_before_fetching(sns_key, fetcher):
    signed = {**sign_sns(notification(sample("ses_delivery.json")), sns_key),
              "SignatureVersion": "3"}
    with pytest.raises(SignatureError):
        ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher)
    assert fetcher.urls == []


def test_ses_wrong_topic_is_refused_before_fetching(sns_key, fetcher):
    signed = sign_sns(notification(sample("ses_bounce_permanent.json"),
                                   TopicArn="arn:aws:sns:us-east-1:999999999999:someone-else"),
                      sns_key)
    with pytest.raises(SignatureError, match="TopicArn"):
        ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher)
    assert fetcher.urls == []


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-0.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem",
        "https://sns.us-east-1.amazonaws.com@evil.example/SimpleNotificationService-0.pem",
        "https://evil.example\\@sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-0.pem",
        "https://sns.us-east-1.amazonaws.com\n/SimpleNotificationService-0.pem",
        "https://s3.us-east-1.amazonaws.com/SimpleNotificationService-0.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.txt",
        "file:///etc/ssl/sns.pem",
        "",
    ],
)
def test_ses_certificate_outside_sns_https_is_never_fetched(sns_key, fetcher, cert_url):
    signed = sign_sns(notification(sample("ses_bounce_permanent.json"), SigningCertURL=cert_url),
                      sns_key)
    with pytest.raises(SignatureError, match="SigningCertURL"):
        ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher)
    assert fetcher.urls == []


def test_ses_china_region_certificate_host_is_accepted(sns_key, fetcher):
    url = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem"
    signed = sign_sns(notification(sample("ses_delivery.json"), SigningCertURL=url), sns_key)
    events, _ = ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher)
    assert [e.kind for e in events] == ["delivered"]
    assert fetcher.urls == [url]


def test_ses_subscription_confirmation_returns_the_url_to_visit(sns_key, fetcher):
    signed = sign_sns(confirmation(), sns_key, "2")

    events, subscribe_url = ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher)

    assert (events, subscribe_url) == ([], SUBSCRIBE_URL)
    assert fetcher.urls == [CERT_URL]


def test_ses_subscription_confirmation_is_signed_over_token_and_url(sns_key, fetcher):
    signed = sign_sns(confirmation(), sns_key)
    moved = {**signed, "SubscribeURL": SUBSCRIBE_URL.replace("Token=2", "Token=3")}
    with pytest.raises(SignatureError):
        ses_events(body(moved), topic_arns={TOPIC}, fetcher=fetcher)


@pytest.mark.parametrize(
    "subscribe_url",
    [
        "https://attacker.example/?Action=ConfirmSubscription",
        "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
        "https://sns.us-east-1.amazonaws.com.attacker.example/?Action=ConfirmSubscription",
    ],
)
def test_ses_subscription_confirmation_to_an_evil_url_is_refused(sns_key, fetcher, subscribe_url):
    signed = sign_sns(confirmation(subscribe_url=subscribe_url), sns_key)
    with pytest.raises(SignatureError, match="SubscribeURL"):
        ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher)
    assert fetcher.urls == []


def test_ses_unsubscribe_confirmation_asks_for_nothing(sns_key, fetcher):
    signed = sign_sns(confirmation("UnsubscribeConfirmation"), sns_key)
    assert ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher) == ([], None)


def test_ses_certificate_is_fetched_once_per_url_until_the_cache_is_cleared(sns_key, fetcher):
    first = body(sign_sns(notification(sample("ses_delivery.json"), message_id="a"), sns_key))
    second = body(sign_sns(notification(sample("ses_complaint.json"), message_id="b"), sns_key))

    provider = SesProvider(topic_arns={TOPIC}, fetcher=fetcher)
    provider.parse(first, {})
    provider.parse(second, {})
    assert fetcher.urls == [CERT_URL]

    provider.clear_certificate_cache()
    provider.parse(first, {})
    assert fetcher.urls == [CERT_URL, CERT_URL]

    own_cache: dict = {}
    ses_events(first, topic_arns={TOPIC}, fetcher=fetcher, cert_cache=own_cache)
    assert list(own_cache) == [CERT_URL]
    assert len(fetcher.urls) == 3


def test_ses_expired_or_unreadable_certificate_is_refused(sns_key):
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    expired = FakeFetcher(make_cert(sns_key, not_before=long_ago,
                                    not_after=long_ago + timedelta(days=30)))
    signed = body(sign_sns(notification(sample("ses_delivery.json")), sns_key))

    with pytest.raises(SignatureError, match="validity"):
        ses_events(signed, topic_arns={TOPIC}, fetcher=expired)
    with pytest.raises(SignatureError, match="PEM"):
        ses_events(signed, topic_arns={TOPIC}, fetcher=FakeFetcher(b"<html>Not Found</html>"))


def test_ses_fetch_failure_propagates_so_the_view_answers_5xx(sns_key):
    class Down:
        def fetch(self, url: str) -> bytes:
            raise OSError("network unreachable")

    signed = body(sign_sns(notification(sample("ses_delivery.json")), sns_key))
    with pytest.raises(OSError):
        ses_events(signed, topic_arns={TOPIC}, fetcher=Down())


def test_ses_signed_message_that_is_not_json_is_a_payload_error(sns_key, fetcher):
    for payload in ("{not json", json.dumps(["a list"])):
        signed = sign_sns(notification(payload), sns_key)
        with pytest.raises(PayloadError):
            ses_events(body(signed), topic_arns={TOPIC}, fetcher=fetcher)
    broken = sample("ses_bounce_permanent.json")
    del broken["bounce"]
    with pytest.raises(PayloadError):
        ses_events(body(sign_sns(notification(broken), sns_key)), topic_arns={TOPIC},
                   fetcher=fetcher)


def test_ses_body_that_is_not_an_sns_message_is_refused(fetcher):
    for raw in (b"{not json", b"[]", json.dumps(sample("ses_delivery.json")).encode()):
        with pytest.raises(SignatureError):
            ses_events(raw, topic_arns={TOPIC}, fetcher=fetcher)
    assert fetcher.urls == []


# --- Postmark ------------------------------------------------------------------------------------

PM_USER, PM_PASSWORD = "postmark-hook", "s3cret-pass:with-colon"


def basic(user: str = PM_USER, password: str = PM_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def postmark(record, authorization: str | None = None) -> list[Event]:
    raw = record if isinstance(record, bytes) else json.dumps(record).encode()
    return postmark_events(raw, authorization or basic(), username=PM_USER, password=PM_PASSWORD)


def test_postmark_hard_bounce_is_suppressed_with_its_bounce_id():
    events = postmark(sample("postmark_bounce.json"))

    assert summary(events) == [
        ("4323372036854775807", "hard_bounce", "gone@example.com", "tok_Gone-0005"),
    ]
    assert events[0].source == "postmark"
    assert events[0].occurred_at == datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC)
    assert events[0].detail.startswith("HardBounce: The server was unable")
    assert_well_formed(events)


@pytest.mark.parametrize(
    ("bounce_type", "kind"),
    [
        ("HardBounce", "hard_bounce"),
        ("BadEmailAddress", "hard_bounce"),
        ("ManuallyDeactivated", "hard_bounce"),
        ("SoftBounce", "soft_bounce"),
        ("Transient", "soft_bounce"),
        ("DnsError", "soft_bounce"),
        ("Blocked", "soft_bounce"),
        ("SpamNotification", "soft_bounce"),
        ("DMARCPolicy", "soft_bounce"),
        ("Unsubscribe", "complaint"),
        ("SpamComplaint", "complaint"),
        ("AutoResponder", "ignored"),
        ("AddressChange", "ignored"),
        ("ChallengeVerification", "ignored"),
        ("SomethingPostmarkAddsLater", "ignored"),
    ],
)
def test_postmark_bounce_types(bounce_type, kind):
    record = {**sample("postmark_bounce.json"), "Type": bounce_type}
    assert [e.kind for e in postmark(record)] == [kind]


def test_postmark_spam_complaint_delivery_and_broadcast_suppression():
    complaint = postmark(sample("postmark_spam_complaint.json"))
    delivery = postmark(sample("postmark_delivery.json"))
    change = postmark(sample("postmark_subscription_change.json"))

    assert summary(complaint) == [("42", "complaint", "angry@example.com", "tok_Angry-0006")]
    assert summary(delivery) == [(
        "delivery:883953f4-6105-42a2-a16a-77a8eac79483:reader@example.com",
        "delivered", "reader@example.com", "tok_Reader-0007",
    )]
    assert summary(change) == [(
        "subscription:complainer@example.com:2020-02-01T10:53:34.416071Z",
        "complaint", "complainer@example.com", "tok_Broadcast-0008",
    )]
    assert_well_formed(complaint + delivery + change)


def test_postmark_reactivation_and_manual_suppression_are_not_bounces():
    base = sample("postmark_subscription_change.json")
    reactivated = {**base, "SuppressSending": False, "SuppressionReason": None}
    manual = {**base, "SuppressionReason": "ManualSuppression"}
    hard = {**base, "SuppressionReason": "HardBounce"}

    assert [e.kind for e in postmark(reactivated)] == ["ignored"]
    assert [e.kind for e in postmark(manual)] == ["ignored"]
    assert [e.kind for e in postmark(hard)] == ["hard_bounce"]


def test_postmark_open_is_ignored_with_a_stable_id():
    record = {"RecordType": "Open", "MessageID": "abc", "Recipient": "Reader@example.com",
              "ReceivedAt": "2019-11-05T16:33:54Z", "Metadata": {"nl_token": "tok_Reader-0007"}}
    first, again = postmark(record), postmark(record)
    assert summary(first) == [("Open:abc:reader@example.com", "ignored", "reader@example.com",
                               "tok_Reader-0007")]
    assert first == again


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        basic(password="wrong"),
        basic(user="someone-else"),
        basic(password=PM_PASSWORD + "x"),
        "Bearer " + base64.b64encode(f"{PM_USER}:{PM_PASSWORD}".encode()).decode(),
        "Basic not-base64!!",
        "Basic " + base64.b64encode(PM_USER.encode()).decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),
        "Basic ünïcode",
    ],
)
def test_postmark_missing_or_wrong_credentials_are_refused(authorization):
    raw = json.dumps(sample("postmark_bounce.json")).encode()
    with pytest.raises(SignatureError):
        postmark_events(raw, authorization, username=PM_USER, password=PM_PASSWORD)


def test_postmark_basic_scheme_is_case_insensitive():
    record = sample("postmark_bounce.json")
    assert postmark(record, basic().replace("Basic", "basic"))[0].kind == "hard_bounce"


def test_postmark_malformed_body_with_good_credentials_is_a_payload_error():
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        with pytest.raises(PayloadError):
            postmark(raw)
    with pytest.raises(PayloadError):
        postmark({k: v for k, v in sample("postmark_bounce.json").items() if k != "ID"})


def test_postmark_bad_token_in_metadata_is_dropped():
    record = {**sample("postmark_bounce.json"), "Metadata": {"nl_token": "../../etc"}}
    event = postmark(record)[0]
    assert (event.kind, event.token) == ("hard_bounce", None)


def test_postmark_unconfigured_credentials_are_our_error_not_the_senders():
    with pytest.raises(ValueError) as caught:
        postmark_events(b"{}", basic("", ""), username="", password="")
    assert not isinstance(caught.value, PayloadError)


# --- Mailgun -------------------------------------------------------------------------------------

MG_KEY = "key-" + "3ax6xnjp29jd6fds4gc373sgvjxteol0"
MG_NOW = datetime(2018, 3, 16, 21, 0, 0, tzinfo=UTC)


def mailgun_body(event_data, *, key: str = MG_KEY, at: datetime = MG_NOW,
                 nonce: str = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123") -> bytes:
    timestamp = str(int(at.timestamp()))
    digest = hmac.new(key.encode(), (timestamp + nonce).encode(), hashlib.sha256).hexdigest()
    return json.dumps({
        "signature": {"timestamp": timestamp, "token": nonce, "signature": digest},
        "event-data": event_data,
    }).encode()


def mailgun(raw: bytes, now: datetime = MG_NOW) -> list[Event]:
    return mailgun_events(raw, signing_key=MG_KEY, now=now)


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("mailgun_failed_permanent.json",
         ("G9Bn5sl1TC6nu79C8C0bwg", "hard_bounce", "gone@example.com", "tok_Gone-0009")),
        ("mailgun_failed_temporary.json",
         ("Fs7-5t81S2ms-5NaXAJ4Tw", "soft_bounce", "full@example.org", "tok_Full-0010")),
        ("mailgun_complained.json",
         ("-Agny091SquKnsrW2NEKUA", "complaint", "angry@example.net", "tok_Angry-0011")),
        ("mailgun_delivered.json",
         ("CPgfbmQMTCKtHW6uIWtuVe", "delivered", "reader@example.com", "tok_Reader-0012")),
    ],
)
def test_mailgun_event_kinds(fixture, expected):
    events = mailgun(mailgun_body(sample(fixture)))
    assert summary(events) == [expected]
    assert events[0].source == "mailgun"
    assert_well_formed(events)


def test_mailgun_permanent_failure_details_and_time():
    event = mailgun(mailgun_body(sample("mailgun_failed_permanent.json")))[0]
    assert event.occurred_at == datetime.fromtimestamp(1521233195.375624, UTC)
    assert event.detail == ("failed/permanent: bounce 550 5.1.1 The email account that you "
                            "tried to reach does not exist")


def test_mailgun_unknown_event_is_ignored():
    data = {**sample("mailgun_delivered.json"), "event": "opened", "id": "open-1"}
    assert summary(mailgun(mailgun_body(data))) == [
        ("open-1", "ignored", "reader@example.com", "tok_Reader-0012"),
    ]


def test_mailgun_bad_token_in_user_variables_is_dropped():
    data = {**sample("mailgun_failed_permanent.json"), "user-variables": {"nl_token": "a b c d"}}
    event = mailgun(mailgun_body(data))[0]
    assert (event.kind, event.token) == ("hard_bounce", None)


def test_mailgun_wrong_key_or_tampered_signature_is_refused():
    data = sample("mailgun_failed_permanent.json")
    wrong_key = mailgun_body(data, key="key-someone-else")
    tampered = json.loads(mailgun_body(data))
    tampered["signature"]["token"] = "f" * 50
    no_signature = json.dumps({"event-data": data}).encode()
    partial = json.loads(mailgun_body(data))
    del partial["signature"]["signature"]

    for raw in (wrong_key, json.dumps(tampered).encode(), no_signature,
                json.dumps(partial).encode()):
        with pytest.raises(SignatureError):
            mailgun(raw)


def test_mailgun_stale_or_future_timestamp_is_refused():
    raw = mailgun_body(sample("mailgun_failed_permanent.json"))
    assert mailgun(raw, now=MG_NOW + timedelta(seconds=299))
    with pytest.raises(SignatureError, match="timestamp"):
        mailgun(raw, now=MG_NOW + timedelta(seconds=301))
    with pytest.raises(SignatureError, match="timestamp"):
        mailgun(raw, now=MG_NOW - timedelta(seconds=301))
    with pytest.raises(SignatureError):
        mailgun_events(raw, signing_key=MG_KEY, max_age=60, now=MG_NOW + timedelta(seconds=61))


def test_mailgun_malformed_json_is_refused_and_signed_garbage_is_a_payload_error():
    # Without JSON there is no signature to check: unauthenticated, so refused.
    with pytest.raises(SignatureError):
        mailgun(b"{not json")
    with pytest.raises(PayloadError):
        mailgun(mailgun_body("not an object"))
    with pytest.raises(PayloadError):
        mailgun(mailgun_body({"event": "failed", "severity": "permanent"}))  # no id


# --- SendGrid ------------------------------------------------------------------------------------

SG_NOW = datetime(2017, 12, 15, 1, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sg_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def sg_public_b64(sg_key) -> str:
    der = sg_key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sg_sign(key: ec.EllipticCurvePrivateKey, raw: bytes, timestamp: str) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + raw, ec.ECDSA(hashes.SHA256()))).decode()


def sendgrid(raw: bytes, key, public: str, *, now: datetime = SG_NOW, at: datetime = SG_NOW):
    timestamp = str(int(at.timestamp()))
    return sendgrid_events(raw, sg_sign(key, raw, timestamp), timestamp,
                           public_key_pem_or_b64=public, now=now)


def test_sendgrid_events_map_to_kinds(sg_key, sg_public_b64):
    raw = (WEBHOOKS / "sendgrid_events.json").read_bytes()

    events = sendgrid(raw, sg_key, sg_public_b64)

    assert summary(events) == [
        ("sg-bounce-1", "hard_bounce", "gone@example.com", "tok_Gone-0013"),
        ("sg-blocked-2", "soft_bounce", "blocked@example.org", "tok_Blocked-0014"),
        ("sg-dropped-3", "hard_bounce", "bounced@example.com", "tok_Dropped-0015"),
        ("sg-dropped-4", "hard_bounce", "not-an-address", None),
        ("sg-dropped-5", "ignored", "left@example.com", None),
        ("sg-deferred-6", "deferred", "slow@example.com", "tok_Slow-0016"),
        ("sg-spam-7", "complaint", "angry@example.net", "tok_Angry-0017"),
        ("sg-delivered-8", "delivered", "reader@example.com", "tok_Reader-0018"),
        ("sg-open-9", "ignored", "reader@example.com", None),  # its token was malformed
    ]
    assert {e.source for e in events} == {"sendgrid"}
    assert events[0].occurred_at == datetime.fromtimestamp(1513299569, UTC)
    assert events[0].detail.startswith("bounce/bounce: 5.1.1 550 5.1.1")
    assert_well_formed(events)


def test_sendgrid_accepts_a_pem_public_key(sg_key):
    pem = sg_key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = json.dumps([sample("sendgrid_events.json")[6]]).encode()
    assert [e.kind for e in sendgrid(raw, sg_key, pem.decode())] == ["complaint"]


def test_sendgrid_long_reason_becomes_one_short_line(sg_key, sg_public_b64):
    event = {**sample("sendgrid_events.json")[0], "reason": "550\r\n" + "x" * 2000}
    result = sendgrid(json.dumps([event]).encode(), sg_key, sg_public_b64)
    assert_well_formed(result)
    assert result[0].detail.startswith("bounce/bounce: 5.1.1 550 xxx")


def test_sendgrid_missing_headers_are_refused(sg_key, sg_public_b64):
    raw = (WEBHOOKS / "sendgrid_events.json").read_bytes()
    timestamp = str(int(SG_NOW.timestamp()))
    signature = sg_sign(sg_key, raw, timestamp)
    for sig, ts in ((None, timestamp), (signature, None), ("", timestamp), (None, None)):
        with pytest.raises(SignatureError):
            sendgrid_events(raw, sig, ts, public_key_pem_or_b64=sg_public_b64, now=SG_NOW)


def test_sendgrid_tampered_body_or_foreign_signature_is_refused(sg_key, sg_public_b64):
    raw = (WEBHOOKS / "sendgrid_events.json").read_bytes()
    timestamp = str(int(SG_NOW.timestamp()))
    signature = sg_sign(sg_key, raw, timestamp)
    tampered = raw.replace(b"Unsubscribed Address", b"Bounced Address")
    other = sg_sign(ec.generate_private_key(ec.SECP256R1()), raw, timestamp)
    later = str(int(SG_NOW.timestamp()) + 10)

    for body_, sig, ts in ((tampered, signature, timestamp), (raw, other, timestamp),
                           (raw, signature, later), (raw, "bm90IGEgc2lnbmF0dXJl", timestamp),
                           (raw, "!!!", timestamp)):
        with pytest.raises(SignatureError):
            sendgrid_events(body_, sig, ts, public_key_pem_or_b64=sg_public_b64, now=SG_NOW)


def test_sendgrid_stale_timestamp_is_refused_even_when_signed(sg_key, sg_public_b64):
    raw = (WEBHOOKS / "sendgrid_events.json").read_bytes()
    old = SG_NOW - timedelta(seconds=301)
    assert sendgrid(raw, sg_key, sg_public_b64, at=SG_NOW - timedelta(seconds=299))
    with pytest.raises(SignatureError, match="timestamp"):
        sendgrid(raw, sg_key, sg_public_b64, at=old)


def test_sendgrid_malformed_json_with_good_signature_is_a_payload_error(sg_key, sg_public_b64):
    for raw in (b"[{not json", b'{"event": "bounce"}', b'["a string"]',
                json.dumps([{"event": "bounce", "email": "x@example.com"}]).encode()):
        with pytest.raises(PayloadError):
            sendgrid(raw, sg_key, sg_public_b64)


def test_sendgrid_misconfigured_key_is_our_error_not_the_senders(sg_key):
    raw = b"[]"
    for bad in ("not a key", base64.b64encode(b"garbage").decode()):
        with pytest.raises(ValueError) as caught:
            sendgrid(raw, sg_key, bad)
        assert not isinstance(caught.value, PayloadError)


def test_same_webhook_twice_gives_the_same_event_ids(sns_key, fetcher, sg_key, sg_public_b64):
    ses_body = body(sign_sns(notification(sample("ses_bounce_permanent.json")), sns_key))
    sg_raw = (WEBHOOKS / "sendgrid_events.json").read_bytes()
    mg_first = mailgun_body(sample("mailgun_failed_permanent.json"))
    mg_retry = mailgun_body(copy.deepcopy(sample("mailgun_failed_permanent.json")),
                            at=MG_NOW + timedelta(seconds=60), nonce="another-nonce")

    assert ses_events(ses_body, topic_arns={TOPIC}, fetcher=fetcher) == ses_events(
        ses_body, topic_arns={TOPIC}, fetcher=fetcher)
    assert [e.event_id for e in mailgun(mg_first)] == [
        e.event_id for e in mailgun(mg_retry, now=MG_NOW + timedelta(seconds=60))]
    assert [e.event_id for e in sendgrid(sg_raw, sg_key, sg_public_b64)] == [
        e.event_id for e in sendgrid(sg_raw, sg_key, sg_public_b64,
                                     at=SG_NOW + timedelta(seconds=30),
                                     now=SG_NOW + timedelta(seconds=30))]
