"""Support-ticket wording for the demo: templates per language and intent, slot fillers,
and channel framing (email, chat, phone notes). Pure data, no randomness here.

A template is ``(intent, text)`` or, for a deliberately ambiguous ticket,
``(intent, text, alt)`` where ``alt`` is the intent it is easily mistaken for; such
items are tagged ``edge-case``. Slots: ``{order} {amount} {date} {days} {product}
{plan} {device} {error} {carrier}``.
"""

from __future__ import annotations

from dataclasses import dataclass

INTENTS: tuple[str, ...] = (
    "billing",
    "refund",
    "shipping",
    "account_access",
    "technical_issue",
    "cancellation",
    "other",
)

INTENT_DESCRIPTIONS: dict[str, str] = {
    "billing": "Charges, invoices, prices and payment methods, when the customer does not ask for money back.",
    "refund": "The customer asks for money back (returns, duplicate charges they want reversed, promised refunds).",
    "shipping": "Delivery status, tracking, addresses, lost or late parcels (unless a refund is the main ask).",
    "account_access": "Logging in, passwords, two-factor codes, locked or taken-over accounts.",
    "technical_issue": "Something does not work: crashes, errors, connectivity, sync, device faults.",
    "cancellation": "Ending a subscription, an auto-renewal, an account or an order before it ships.",
    "other": "Anything else: praise, suggestions, product questions, job or sales enquiries.",
}


@dataclass(frozen=True, slots=True)
class Template:
    intent: str
    text: str
    alt: str | None = None

    @property
    def edge_case(self) -> bool:
        return self.alt is not None


def _t(intent: str, text: str, alt: str | None = None) -> Template:
    return Template(intent, text, alt)


TEMPLATES: dict[str, tuple[Template, ...]] = {
    "en": (
        _t(
            "billing",
            "I was charged {amount} on {date} but my plan is supposed to cost less than that. Can you explain the charge?",
        ),
        _t(
            "billing",
            "My invoice for the {plan} plan shows an extra line I don't recognize. Please send a corrected invoice.",
        ),
        _t(
            "billing",
            "How do I update the credit card on file? The old one expired and I don't want the {plan} payment to fail.",
        ),
        _t(
            "billing",
            "Why did the price of my {plan} subscription go up this month? Nobody told me about it.",
        ),
        _t("billing", "I need a VAT invoice for order {order} for my company's accounting."),
        _t(
            "refund",
            "I returned the {product} {days} days ago and still haven't received my refund of {amount}.",
        ),
        _t(
            "refund",
            "Please refund order {order}. The {product} arrived broken and I don't want a replacement.",
        ),
        _t(
            "refund",
            "You promised a refund of {amount} when I called last week. When will it show up on my card?",
        ),
        _t(
            "refund",
            "The {product} doesn't work as advertised. I'd like my money back for order {order}.",
        ),
        _t(
            "shipping",
            "Order {order} was supposed to arrive {days} days ago. The {carrier} tracking hasn't updated since.",
        ),
        _t(
            "shipping", "Can I change the delivery address for order {order}? I'm moving next week."
        ),
        _t(
            "shipping", "Tracking says delivered but there is no package at my door. Order {order}."
        ),
        _t("shipping", "Do you ship the {product} to Canada, and how long does delivery take?"),
        _t(
            "account_access",
            "I can't log in. The password reset email never arrives, I checked spam too.",
        ),
        _t(
            "account_access",
            "My account got locked after too many attempts. Please unlock it, it's the account on this email.",
        ),
        _t(
            "account_access",
            "I changed my phone and now I can't get the two-factor code. How do I get back into my account?",
        ),
        _t(
            "account_access",
            "Someone changed the email on my account without my permission and I can't sign in anymore.",
        ),
        _t(
            "technical_issue",
            "The app crashes every time I open the settings page on my {device}. Error code {error}.",
        ),
        _t(
            "technical_issue",
            "The {product} won't connect to Wi-Fi after the latest firmware update.",
        ),
        _t(
            "technical_issue",
            "The checkout page shows error {error} when I click Pay. I tried two browsers.",
        ),
        _t(
            "technical_issue", "Sync between my {device} and the web app stopped working yesterday."
        ),
        _t(
            "cancellation",
            "Please cancel my {plan} subscription at the end of this billing period.",
        ),
        _t("cancellation", "How do I close my account? I don't need the service anymore."),
        _t("cancellation", "I want to cancel order {order} before it ships."),
        _t(
            "cancellation", "Stop the automatic renewal of my {plan} plan, I'm switching providers."
        ),
        _t("other", "Just wanted to say the agent who helped me yesterday was amazing. Thanks!"),
        _t("other", "Do you have any openings on your customer support team?"),
        _t("other", "Is the {product} available in blue?"),
        _t("other", "Suggestion: please add a dark mode to the app."),
        _t(
            "refund",
            "I was charged twice for order {order}, {amount} each time. I want the extra charge back.",
            "billing",
        ),
        _t(
            "cancellation",
            "Cancel my {plan} subscription and refund this month, I never used it.",
            "refund",
        ),
        _t(
            "account_access",
            "Since the update I can't log in on my {device}, the app just shows error {error}.",
            "technical_issue",
        ),
        _t(
            "shipping",
            "My package for order {order} never arrived. Send it again or give me my money back, whatever is faster.",
            "refund",
        ),
        _t(
            "billing",
            "I cancelled last month but you still charged me {amount} for {plan}. Why?",
            "cancellation",
        ),
        _t("technical_issue", "Is it normal that the {product} gets hot while charging?", "other"),
        _t(
            "other",
            "Will the {product} be on sale for Black Friday? I'd order now if shipping is free.",
            "shipping",
        ),
    ),
    "es": (
        _t(
            "billing",
            "Me cobraron {amount} el {date} y mi plan cuesta menos. ¿Me pueden explicar el cargo?",
        ),
        _t("billing", "Necesito una factura con mis datos fiscales para el pedido {order}."),
        _t(
            "billing",
            "¿Cómo cambio la tarjeta de pago? La anterior caducó y no quiero que falle el cobro del plan {plan}.",
        ),
        _t(
            "refund",
            "Devolví el {product} hace {days} días y todavía no me han reembolsado los {amount}.",
        ),
        _t(
            "refund",
            "Quiero el reembolso del pedido {order}, el {product} llegó roto y no quiero otro.",
        ),
        _t(
            "refund",
            "Me prometieron la devolución de {amount} por teléfono. ¿Cuándo la voy a recibir?",
        ),
        _t(
            "shipping",
            "El pedido {order} tenía que llegar hace {days} días y el seguimiento de {carrier} no se mueve.",
        ),
        _t("shipping", "¿Puedo cambiar la dirección de entrega del pedido {order}?"),
        _t("shipping", "Dice entregado pero no he recibido nada. Pedido {order}."),
        _t(
            "account_access",
            "No puedo iniciar sesión, nunca me llega el correo para restablecer la contraseña.",
        ),
        _t(
            "account_access",
            "Mi cuenta está bloqueada por demasiados intentos. ¿Me la pueden desbloquear?",
        ),
        _t(
            "account_access",
            "Cambié de móvil y ya no recibo el código de verificación para entrar.",
        ),
        _t(
            "technical_issue",
            "La aplicación se cierra sola al abrir la configuración en mi {device}. Código de error {error}.",
        ),
        _t("technical_issue", "El {product} no se conecta al wifi desde la última actualización."),
        _t("technical_issue", "Al pagar me sale el error {error} y no me deja terminar la compra."),
        _t("cancellation", "Quiero dar de baja mi suscripción {plan} al final de este periodo."),
        _t("cancellation", "¿Cómo cancelo el pedido {order}? Todavía no ha salido."),
        _t("cancellation", "Por favor, desactiven la renovación automática de mi plan {plan}."),
        _t("other", "Solo quería dar las gracias, la persona que me atendió ayer fue muy amable."),
        _t("other", "¿El {product} viene en otros colores?"),
        _t("other", "¿Tienen tienda física en Madrid?"),
        _t(
            "refund",
            "Me cobraron dos veces el pedido {order}, {amount} cada vez. Quiero que me devuelvan el cargo duplicado.",
            "billing",
        ),
        _t(
            "cancellation",
            "Den de baja mi plan {plan} y devuélvanme este mes, no lo he usado.",
            "refund",
        ),
        _t(
            "account_access",
            "Desde la actualización no puedo entrar en la app del {device}, sale el error {error}.",
            "technical_issue",
        ),
        _t(
            "shipping",
            "El paquete del pedido {order} nunca llegó. Envíenlo de nuevo o devuélvanme el dinero.",
            "refund",
        ),
        _t(
            "billing",
            "Cancelé el mes pasado y aun así me cobraron {amount}. ¿Por qué?",
            "cancellation",
        ),
    ),
    "de": (
        _t(
            "billing",
            "Mir wurden am {date} {amount} abgebucht, mein Tarif kostet aber weniger. Bitte erklären Sie die Abbuchung.",
        ),
        _t("billing", "Ich brauche eine Rechnung mit ausgewiesener MwSt. für Bestellung {order}."),
        _t("billing", "Wie ändere ich die hinterlegte Kreditkarte? Die alte ist abgelaufen."),
        _t(
            "refund",
            "Ich habe den {product} vor {days} Tagen zurückgeschickt und noch keine Erstattung über {amount} erhalten.",
        ),
        _t(
            "refund",
            "Bitte erstatten Sie Bestellung {order}. Der {product} kam defekt an, ich möchte keinen Ersatz.",
        ),
        _t(
            "refund",
            "Am Telefon wurde mir eine Gutschrift von {amount} zugesagt. Wann kommt das Geld?",
        ),
        _t(
            "shipping",
            "Bestellung {order} sollte vor {days} Tagen ankommen, die {carrier}-Sendungsverfolgung steht still.",
        ),
        _t("shipping", "Kann ich die Lieferadresse für Bestellung {order} noch ändern?"),
        _t("shipping", "Laut Tracking zugestellt, aber kein Paket da. Bestellung {order}."),
        _t(
            "account_access",
            "Ich kann mich nicht anmelden, die E-Mail zum Zurücksetzen des Passworts kommt nie an.",
        ),
        _t("account_access", "Mein Konto ist nach zu vielen Versuchen gesperrt. Bitte entsperren."),
        _t(
            "account_access",
            "Neues Handy, jetzt bekomme ich den Bestätigungscode für die Anmeldung nicht mehr.",
        ),
        _t(
            "technical_issue",
            "Die App stürzt auf meinem {device} ab, sobald ich die Einstellungen öffne. Fehlercode {error}.",
        ),
        _t(
            "technical_issue",
            "Der {product} verbindet sich seit dem letzten Update nicht mehr mit dem WLAN.",
        ),
        _t("technical_issue", "Beim Bezahlen erscheint Fehler {error}, ich komme nicht weiter."),
        _t("cancellation", "Bitte kündigen Sie mein {plan}-Abo zum Ende des Abrechnungszeitraums."),
        _t("cancellation", "Ich möchte Bestellung {order} stornieren, bevor sie verschickt wird."),
        _t("cancellation", "Bitte die automatische Verlängerung meines {plan}-Tarifs beenden."),
        _t("other", "Großes Lob an Ihren Kundenservice, mir wurde gestern super geholfen."),
        _t("other", "Gibt es den {product} auch in Schwarz?"),
        _t("other", "Haben Sie ein Partnerprogramm für Händler?"),
        _t(
            "refund",
            "Bestellung {order} wurde zweimal abgebucht, je {amount}. Ich möchte die doppelte Abbuchung zurück.",
            "billing",
        ),
        _t(
            "cancellation",
            "Bitte mein {plan}-Abo kündigen und diesen Monat erstatten, ich habe es nicht genutzt.",
            "refund",
        ),
        _t(
            "account_access",
            "Seit dem Update komme ich auf dem {device} nicht mehr ins Konto, Fehler {error}.",
            "technical_issue",
        ),
        _t(
            "shipping",
            "Das Paket zu Bestellung {order} ist nie angekommen. Neu senden oder Geld zurück, Hauptsache schnell.",
            "refund",
        ),
    ),
    "fr": (
        _t(
            "billing",
            "On m'a prélevé {amount} le {date} alors que mon forfait coûte moins cher. Pouvez-vous m'expliquer ?",
        ),
        _t("billing", "J'ai besoin d'une facture avec TVA pour la commande {order}."),
        _t("billing", "Comment mettre à jour ma carte bancaire ? L'ancienne a expiré."),
        _t(
            "refund",
            "J'ai renvoyé le {product} il y a {days} jours et je n'ai toujours pas reçu le remboursement de {amount}.",
        ),
        _t("refund", "Merci de rembourser la commande {order}, le {product} est arrivé cassé."),
        _t(
            "refund",
            "On m'a promis un remboursement de {amount} au téléphone. Quand vais-je le recevoir ?",
        ),
        _t(
            "shipping",
            "La commande {order} devait arriver il y a {days} jours et le suivi {carrier} ne bouge plus.",
        ),
        _t("shipping", "Puis-je modifier l'adresse de livraison de la commande {order} ?"),
        _t("shipping", "Le suivi indique livré mais je n'ai rien reçu. Commande {order}."),
        _t(
            "account_access",
            "Impossible de me connecter, je ne reçois jamais l'e-mail de réinitialisation du mot de passe.",
        ),
        _t(
            "account_access",
            "Mon compte est bloqué après trop de tentatives. Pouvez-vous le débloquer ?",
        ),
        _t(
            "account_access",
            "J'ai changé de téléphone et je ne reçois plus le code de vérification.",
        ),
        _t(
            "technical_issue",
            "L'application plante dès que j'ouvre les réglages sur mon {device}. Code d'erreur {error}.",
        ),
        _t(
            "technical_issue",
            "Le {product} ne se connecte plus au wifi depuis la dernière mise à jour.",
        ),
        _t("technical_issue", "Au moment de payer j'ai l'erreur {error}, impossible de finaliser."),
        _t(
            "cancellation",
            "Merci de résilier mon abonnement {plan} à la fin de la période en cours.",
        ),
        _t("cancellation", "Je voudrais annuler la commande {order} avant son expédition."),
        _t(
            "cancellation",
            "Désactivez le renouvellement automatique de mon forfait {plan}, s'il vous plaît.",
        ),
        _t("other", "Merci à la conseillère d'hier, elle a été parfaite."),
        _t("other", "Le {product} existe-t-il en blanc ?"),
        _t("other", "Proposez-vous des tarifs pour les associations ?"),
        _t(
            "refund",
            "La commande {order} a été débitée deux fois, {amount} chaque fois. Je veux récupérer le double prélèvement.",
            "billing",
        ),
        _t(
            "cancellation",
            "Résiliez mon abonnement {plan} et remboursez ce mois-ci, je ne l'ai pas utilisé.",
            "refund",
        ),
        _t(
            "account_access",
            "Depuis la mise à jour je n'arrive plus à me connecter sur mon {device}, erreur {error}.",
            "technical_issue",
        ),
        _t(
            "billing",
            "J'ai résilié le mois dernier mais vous m'avez encore prélevé {amount}. Pourquoi ?",
            "cancellation",
        ),
    ),
}

# Why the accepted label is right, by intent and for each kind of edge case (gold rationale).
RATIONALES: dict[str, str] = {
    "billing": "Rule 2.1: questions about a charge, invoice, price or payment method are billing.",
    "refund": "Rule 3.1: the customer's main ask is to get money back, so refund.",
    "shipping": "Rule 4.1: delivery status, tracking or address of a parcel is shipping.",
    "account_access": "Rule 5.1: the customer cannot get into their account, so account_access.",
    "technical_issue": "Rule 6.1: a product or app malfunction with no access problem is technical_issue.",
    "cancellation": "Rule 7.1: ending a subscription, renewal, account or unshipped order is cancellation.",
    "other": "Rule 8.1: none of the support intents applies (praise, suggestion, product question).",
}
EDGE_RATIONALES: dict[tuple[str, str], str] = {
    (
        "refund",
        "billing",
    ): "Rule 3.2: a duplicate charge the customer wants reversed is refund, not billing.",
    (
        "cancellation",
        "refund",
    ): "Rule 7.3: cancelling is the primary action; the refund request follows from it.",
    (
        "account_access",
        "technical_issue",
    ): "Rule 5.2: an error that blocks sign-in is account_access, not technical_issue.",
    (
        "shipping",
        "refund",
    ): "Rule 4.3: a lost parcel where reshipping is acceptable stays shipping.",
    (
        "billing",
        "cancellation",
    ): "Rule 2.4: a charge after a completed cancellation is a billing dispute.",
    (
        "technical_issue",
        "other",
    ): "Rule 6.3: a safety or hardware concern about a product is technical_issue.",
    ("other", "shipping"): "Rule 8.2: a pre-sales question with no existing order is other.",
}

PRODUCTS = (
    "Nimbus X2 headphones",
    "Aero smartwatch",
    "Pulse Buds",
    "Lumen desk lamp",
    "Orbit router",
    "Kettle K3",
)
PRODUCTS_SHORT = (
    "Nimbus X2",
    "Aero Watch",
    "Pulse Buds",
    "Lumen Lamp",
    "Orbit Router",
    "Kettle K3",
)
PLANS = ("Basic", "Premium", "Family", "Business")
ERRORS = ("E-1043", "E-2210", "ERR_TIMEOUT", "0x80070005", "PAY-402", "SYNC-17")
DEVICES: dict[str, tuple[str, ...]] = {
    "en": ("iPhone", "Android phone", "laptop", "iPad", "Windows PC"),
    "es": ("iPhone", "móvil Android", "portátil", "iPad"),
    "de": ("iPhone", "Android-Handy", "Laptop", "iPad"),
    "fr": ("iPhone", "téléphone Android", "ordinateur portable", "iPad"),
}
CARRIERS: dict[str, tuple[str, ...]] = {
    "en": ("UPS", "FedEx", "USPS", "DHL", "Royal Mail"),
    "es": ("Correos", "SEUR", "DHL", "Estafeta"),
    "de": ("DHL", "Hermes", "DPD", "GLS"),
    "fr": ("La Poste", "Colissimo", "Chronopost", "DPD"),
}
MONTHS: dict[str, tuple[str, ...]] = {
    "en": ("September", "October", "November"),
    "es": ("septiembre", "octubre", "noviembre"),
    "de": ("September", "Oktober", "November"),
    "fr": ("septembre", "octobre", "novembre"),
}
FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Chloe", "Ryan", "Grace", "Owen"),
    "es": ("Lucía", "Mateo", "Valentina", "Diego", "Camila", "Javier", "Sofía", "Andrés"),
    "de": ("Anna", "Lukas", "Marie", "Jonas", "Lea", "Felix", "Sophie", "Paul"),
    "fr": ("Camille", "Hugo", "Léa", "Louis", "Manon", "Jules", "Chloé", "Antoine"),
}
GREETINGS: dict[str, tuple[str, ...]] = {
    "en": ("Hi", "Hello", "Dear support team", "Hi there"),
    "es": ("Hola", "Buenos días", "Estimado equipo de soporte"),
    "de": ("Hallo", "Guten Tag", "Sehr geehrte Damen und Herren"),
    "fr": ("Bonjour", "Bonjour à l'équipe support", "Madame, Monsieur"),
}
SIGNOFFS: dict[str, tuple[str, ...]] = {
    "en": ("Thanks,", "Best regards,", "Cheers,", "Thank you,"),
    "es": ("Gracias,", "Saludos,", "Un saludo,"),
    "de": ("Danke,", "Viele Grüße,", "Mit freundlichen Grüßen,"),
    "fr": ("Merci,", "Cordialement,", "Bien à vous,"),
}
CHAT_OPENERS: dict[str, tuple[str, ...]] = {
    "en": ("hi, ", "hey ", "hello, ", ""),
    "es": ("hola, ", "buenas, ", ""),
    "de": ("hallo, ", "hi, ", ""),
    "fr": ("bonjour, ", "salut, ", ""),
}
PHONE_PREFIX: dict[str, str] = {
    "en": "Call notes: customer says: ",
    "es": "Notas de llamada: el cliente dice: ",
    "de": "Gesprächsnotiz: Kunde sagt: ",
    "fr": "Notes d'appel : le client indique : ",
}


def format_amount(value: float, language: str, region: str) -> str:
    """A price as a customer in that language and region would write it."""
    if language == "en":
        symbol = "£" if region == "emea" else "$"
        return f"{symbol}{value:.2f}"
    if language == "es" and region == "latam":
        return f"${value:.2f}"
    return f"{value:.2f} €".replace(".", ",")


def format_date(day: int, month: int, language: str) -> str:
    """``month`` indexes :data:`MONTHS` (0 = September)."""
    name = MONTHS[language][month]
    if language == "en":
        return f"{name} {day}"
    if language == "es":
        return f"{day} de {name}"
    if language == "de":
        return f"{day}. {name}"
    return f"{day} {name}"
