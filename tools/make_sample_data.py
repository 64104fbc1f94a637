#!/usr/bin/env python3
"""Regenerate the committed sample data under data/ (stdlib only, deterministic).

    python3 tools/make_sample_data.py            # write data/ files, run the asserts
    python3 tools/make_sample_data.py --check    # also TF-IDF + LogisticRegression sanity check (needs sklearn)

Every text is synthetic, assembled from hand-written fragments below. PII is fake:
example.com / example.org addresses, 555 / Ofcom drama numbers, public test card numbers.
"""
from __future__ import annotations

import csv
import json
import random
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

SEED = 20250611
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
LABELS = ["billing", "account", "bug", "shipping", "refund", "feature", "cancellation", "security", "other"]
RAW_SKEW = [20, 17, 15, 12, 10, 9, 7, 5, 5]
PROD_SKEW = [14, 12, 22, 9, 8, 8, 6, 15, 6]
CHANNELS = ["email", "chat", "web", "phone"]
N_CLEAN, N_PROD = 1110, 200
P_AMB, P_HARD = 0.07, 0.31  # share of genuinely ambiguous, and of ambiguous + hard
INSTRUCTION = ("Classify the customer support ticket into exactly one of these labels: "
               + ", ".join(LABELS) + ". Answer with the label only.")
SYSTEM = "You are a support-ticket triage assistant. Reply with exactly one label from: " + ", ".join(LABELS) + "."

# --------------------------------------------------------------------------- slots
SLOTS = {
    "product": ["Brightdesk Pro", "the Brightdesk app", "the Plus plan", "the Family plan", "the Team plan",
                "the Starter plan", "FlowBoard", "the FlowBoard desktop client", "the web dashboard", "the mobile app",
                "SmartHub", "the SmartHub Mini", "the Kettle Pro", "the Inkjet 300", "the Lumen desk lamp",
                "the travel adapter", "the Premium tier", "the annual membership", "the noise-cancelling headset",
                "the Orbit speaker", "the label printer", "the Basic plan", "the charging dock", "the webcam"],
    "feature": ["dark mode", "CSV export", "calendar sync", "bulk editing", "a Slack integration", "offline mode",
                "keyboard shortcuts", "custom fields", "a shared inbox", "recurring tasks", "two-way Google Drive sync",
                "a Zapier connector", "tagging", "read receipts", "an audit log", "a public API", "multi-currency invoices",
                "saved filters", "a Gantt view", "markdown support", "scheduled reports", "SAML login", "widgets"],
    "order": ["#48213", "#51907", "order 60342", "order no. 73318", "#A-10293", "order 88120", "#B-33471", "#66012",
              "order #90455", "#C-2291", "order 41876", "#57730", "ref 39044", "#D-77105", "order 52669"],
    "amount": ["$49.99", "$12", "$9.99", "$120", "$299", "€35", "€14.50", "£8.50", "£60", "$79", "$19.99", "€240",
               "$4.99", "£115", "$1,180", "$36", "€99"],
    "date": ["on the 3rd", "last Tuesday", "yesterday", "two days ago", "on March 14", "last week", "this morning",
             "on the 21st", "on Friday", "at the start of the month", "on May 2", "over the weekend", "in January",
             "ten days ago", "on the 9th", "on October 30", "a month ago"],
    "device": ["my iPhone", "a Pixel 8", "my Windows laptop", "a MacBook Air", "Chrome", "Firefox", "Safari",
               "the iPad app", "Android 14", "Edge", "my work PC", "a Samsung tablet", "Ubuntu"],
    "carrier": ["UPS", "FedEx", "DHL", "Royal Mail", "USPS", "the courier", "DPD", "the local post office", "Hermes"],
    "name": ["Dana", "Marco", "Priya", "Tom", "Aisha", "Lukas", "Sofia", "Kenji", "Grace", "Omar", "Elena", "Ben",
             "Chloe", "Ravi", "Ines", "Jakub", "Mia", "Sam", "Noor", "Pete", "Hannah", "Diego", "Yuki", "Fatima"],
    "company": ["Acme Dental", "Greenfield Books", "Nordlicht GmbH", "Harbor & Co", "Pixel Bakery", "Blue Fern Studio",
                "Tallow Legal", "Quarry Labs", "the Riverside school", "Mosaic Travel"],
    "n": ["2", "3", "4", "5", "6", "8", "10", "12", "14", "three", "five", "nine", "eleven"],
    "country": ["Canada", "Ireland", "Norway", "Australia", "Mexico", "Poland", "Japan", "Switzerland", "Brazil"],
    "error": ["error 500", "'something went wrong'", "ERR_TIMEOUT", "error code 0x80070005", "a 404 page",
              "'unexpected token'", "a spinning wheel", "'sync failed (E42)'", "error 403"],
    "ref": ["TX-482913", "INV-20931", "TX-771204", "INV-33018", "REF-55210", "TX-906672", "INV-41187"],
}


def fill(t: str, rng: random.Random, slots=SLOTS) -> str:
    return re.sub(r"\{(\w+?)2?\}", lambda m: rng.choice(slots[m.group(1)]), t)


# --------------------------------------------------------------------------- fragments
OPENERS = ["Hi,", "Hello.", "Hey team,", "Good morning,", "Hi support,", "To whom it may concern,", "Hope you're well.",
           "Quick one.", "Sorry to bother you again.", "First time writing in.", "I've already emailed twice about this.",
           "Urgent.", "Hi, it's {name} from {company}.", "I'm contacting you on behalf of my mother.", "Hiya,",
           "Good afternoon.", "Hello, {name} here.", "Writing from {company}.", "Dear support team,", "Hey,",
           "Not sure this is the right place, but here goes.", "Long-time customer here.", "Hi again,",
           "I hope someone can help.", "Evening all,", "Following up on my chat yesterday.", "Hi there,",
           "Apologies for the long message.", "Quick question for you.", "Hello from {country}."]
PHONE_OPENERS = ["Customer called:", "Caller says:", "Phone note:", "Customer phoned in,", "Call summary:"]
SIGNOFFS = ["Thanks.", "Thanks in advance!", "Cheers, {name}", "Regards, {name}", "Please help.", "Appreciate it.",
            "Let me know asap.", "Thank you for your time.", "Best, {name}", "Kind regards.", "ty", "Many thanks!",
            "Looking forward to hearing from you.", "Thanks, {name} ({company})", "Would appreciate a quick reply.",
            "Have a good day.", "Thx", "Cheers!", "Speak soon.", "Grateful for any help.", "Much appreciated, {name}"]
URGENCY = ["This is urgent.", "I need this sorted by Friday.", "Please get back to me today.", "It's quite frustrating.",
           "No rush.", "My boss is asking about it.", "This is the third time I'm asking.", "Thanks for being patient.",
           "I'm travelling so email is best.", "We have a deadline next week."]
# background sentences that borrow one topic's vocabulary without stating the request
CONTEXT = {
    "billing": ["I pay for {product} every month by card.", "My last invoice was {amount}.", "We're on annual billing.",
                "The renewal went through fine {date}.", "I upgraded to {product} a few weeks ago.",
                "Our finance person usually handles the payments."],
    "account": ["I log in with my work email.", "I have two logins, one personal and one for work.",
                "I reset my password {date} and that went fine.", "I'm the admin of our team account.",
                "My username is the same as on the old system.", "I signed up with Google."],
    "bug": ["The app has been a bit slow since the last update.", "I'm on {device}.", "I already cleared my cache.",
            "I reinstalled the app {date}.", "Everything else seems to work normally.",
            "I saw {error} once last month but it went away."],
    "shipping": ["I ordered {product} {date}.", "The package for {order} came with {carrier}.", "The parcel came on time.",
                 "I live in a flat so deliveries go to the concierge.", "I got the shipping confirmation {date}.",
                 "It was a gift for my sister."],
    "refund": ["I returned something last year and it went smoothly.", "I know your return policy is 30 days.",
               "I had a refund from you once before.", "Last time the money came back within a week."],
    "feature": ["We use {product} for the whole team.", "We really like the new layout.",
                "I compared a few tools before choosing yours.", "I mostly use it for {feature}."],
    "cancellation": ["We were thinking about switching tools at one point.", "My contract runs until December.",
                     "I almost cancelled last year but stayed.", "We're reviewing all our subscriptions this quarter."],
    "security": ["I use a password manager.", "Two-factor is turned on for my account.",
                 "Our IT team is quite strict about vendors.", "I got a login notification {date}, which was me."],
    "other": ["I've been a customer since 2019.", "I'm not very technical.", "I'm writing from my phone.",
              "A friend recommended you.", "I read your FAQ first."],
}
INTENTS = {
    "billing": [
        "I was charged twice for {product} this month.", "Why did my card get billed {amount} {date}?",
        "Can you send me an invoice for my last payment? I need it for expenses.",
        "My invoice shows the wrong company name and VAT number.",
        "I need to update the card on file, the old one expired.",
        "The price went up from {amount} to {amount2} without any notice.",
        "There's a charge of {amount} on my statement I don't recognise.", "How do I switch from monthly to annual billing?",
        "My payment keeps getting declined even though the card works everywhere else.",
        "Please add our PO number to future invoices.", "We were billed for 8 seats but only have 5 users.",
        "The receipt for {order} is missing the tax breakdown.", "Is it possible to pay by bank transfer instead?",
        "I got charged full price even though I entered a discount code.",
        "Why is there a pending authorisation of {amount} on my card?",
        "Our accountant needs copies of every invoice from last quarter.",
        "The renewal payment came out a week earlier than expected.",
        "Can I change the billing address printed on the invoices?",
        "We were charged in dollars but our account is set to euros.",
        "My trial was meant to be free, yet I see a payment of {amount}.",
        "PayPal says the payment went through but your site says it failed.",
        "Could someone explain the line items on this month's bill?",
        "Can the invoice be split across two cost centres?", "The promotional price ended and nobody told us.",
        "What's the difference in cost between the Team plan and Plus for 12 users?",
        "Invoice {ref} lists {product} twice.", "How much will I pay if I add three more seats mid-cycle?",
        "I was told the upgrade would be prorated but I paid the whole amount.",
        "Do you offer discounted pricing for charities?", "Where can I download past receipts?",
        "My bank flagged your payment of {amount} as foreign, can you bill in pounds?"],
    "account": [
        "I can't log in, it keeps saying my password is wrong.", "How do I change the email address on my profile?",
        "The password reset email never arrives.", "I got a new phone and lost my two-factor codes.",
        "Please merge my two accounts, I signed up twice by accident.",
        "I need to transfer ownership of our workspace to a colleague.",
        "My login is locked after too many attempts.", "How can I change my username?",
        "I want to add a second admin to our team.", "The verification link says it has expired.",
        "Can you update the name on my profile? I recently got married.",
        "I signed up with Google and now want a normal password instead.",
        "A colleague left, how do I remove her from our workspace?", "I'm not receiving the SMS code to sign in.",
        "I can't find where to change my notification preferences.", "I forgot which address I registered with.",
        "Can one login have access to two separate workspaces?", "Our SSO stopped recognising new starters.",
        "How do I switch the interface language to German?", "My profile picture won't update, is there a size limit?",
        "Please remove my old phone number as the recovery option.",
        "I'd like to invite my accountant as a read-only member.", "How do I leave a team I was added to by mistake?",
        "I need to reactivate a user we deactivated last month.", "Can I sign in with my work email instead of my personal one?",
        "The invite link I sent to a new hire doesn't let them join."],
    "bug": [
        "The app crashes every time I open the settings page.", "Export to PDF produces a blank file.",
        "Search returns nothing even for items I know exist.", "Since the last update sync is stuck at 99%.",
        "The save button does nothing on {device}.", "Images don't load in the web dashboard, just grey boxes.",
        "I get {error} when uploading attachments over 2 MB.", "Dates show up in the wrong time zone in reports.",
        "Notifications arrive twice for every message.", "The page freezes when I scroll a long list.",
        "In dark mode some labels are invisible.", "The {feature} toggle resets itself after every restart.",
        "Undo deletes the whole paragraph instead of the last word.",
        "The mobile app shows a white screen after the splash logo.", "Numbers in the CSV are rounded wrongly.",
        "Pasting a table from Excel breaks the formatting.", "The filter dropdown lists the same option three times.",
        "Audio in calls cuts out after about ten minutes.", "The app drains my battery even when it's closed.",
        "The badge says 3 unread messages but there are none.", "Drag and drop stopped working on {device}.",
        "Reports show {error} whenever I pick a custom date range.", "The {product} firmware update froze halfway.",
        "Half the buttons are in French even though my language is English.",
        "The calendar widget shows last month's events.", "Attachments I upload disappear after refreshing.",
        "Printing from the app cuts off the right margin.", "The scroll bar jumps back to the top every few seconds.",
        "Typing in the comment box lags by a second per letter.", "The chart tooltips show NaN instead of values."],
    "shipping": [
        "The parcel for {order} still hasn't arrived, it's been {n} days.", "Tracking has said 'in transit' for a week.",
        "The parcel was delivered to the wrong address.", "Can I change the delivery address for {order}?",
        "The {carrier} driver said nobody was home but I was in all day.", "Do you ship to {country}?",
        "The box arrived crushed and the corner of the item is dented.", "Only one of the two items in my order came.",
        "How long does express delivery take to {country}?", "The tracking number doesn't work on the {carrier} site.",
        "Can I collect the order from a store instead?", "My package shows as delivered but it isn't here.",
        "Could the delivery be held until I'm back from holiday?", "Customs is asking me for an import fee, is that normal?",
        "The estimated delivery date keeps moving.", "When will {product} be dispatched?",
        "The parcel is sitting at the depot and nobody is bringing it.", "Can you ship to a PO box?",
        "The label says the wrong house number.", "My order has been 'processing' for {n} days and hasn't left the warehouse.",
        "I was sent the black version instead of the white one.", "Can you combine my two orders into one delivery?"],
    "refund": [
        "I'd like a refund for {order}, the product didn't work as described.",
        "I returned the item two weeks ago, when will I get my money back?",
        "Please refund the {amount} you took by mistake.", "Can I get my money back for the unused months?",
        "The refund you promised hasn't shown up on my card.", "How do I return {product} for a full refund?",
        "I was told the refund would take 5 days, it's been three weeks.",
        "The item arrived broken and I want my money back, not a replacement.",
        "You refunded the wrong amount, I paid {amount} but got back less.",
        "Can the refund go to PayPal instead of the original card?",
        "I'm within the 30-day window, please process a return.", "Requesting reimbursement for the duplicate order.",
        "Please reverse the payment for {order}, I never received it.",
        "I'd like to return {product}, it's not what I expected. Money back please.",
        "My refund status says approved but nothing has arrived.", "Is the return shipping free if I send it back?",
        "Can I get a partial refund since half the set was missing?", "Please credit back the {amount} for the upgrade."],
    "feature": [
        "It would be great if you could add {feature}.", "Any plans to support {feature}?",
        "Could reports be exported straight to Excel?", "Please consider a way to schedule posts in advance.",
        "Suggestion: let us pin important notes to the top.", "Would love an API endpoint for bulk updates.",
        "Is {feature} on the roadmap? Our team really needs it.", "Feature request: a keyboard shortcut for archiving.",
        "It would help a lot if the mobile app had {feature}.", "Can you add an option to hide completed tasks?",
        "We'd honestly pay more for {feature}.", "The weekly summary email would be nicer with charts.",
        "Please let us choose the start day of the week.", "An option to duplicate a whole project would save us hours.",
        "Can you make the sidebar collapsible?", "I wish I could set different reminders per list.",
        "Would you consider a Linux version of the desktop client?", "Let admins set default templates for new users, please."],
    "cancellation": [
        "Please cancel my subscription at the end of this billing period.",
        "I want to close our plan, we've moved to another tool.", "How do I stop the automatic renewal?",
        "Please cancel {order}, I ordered the wrong size.", "We're closing the business, please end our plan.",
        "Please downgrade me to free and stop the paid plan.", "Don't renew my membership next month.",
        "Please terminate the contract for our 10 seats.", "Stop my subscription immediately.",
        "I no longer need {product}, please end it.", "How do I unsubscribe from the paid tier?",
        "I want to end my membership, it's too expensive for what I use.",
        "Please make sure I'm not renewed when the year runs out.", "Can I cancel just one of the seats?"],
    "security": [
        "I got an alert that someone logged in from another country, that wasn't me.",
        "I think my account was hacked, there are orders I didn't place.",
        "I received a phishing email pretending to be from you.", "Someone changed my password without my permission.",
        "Is customer data encrypted at rest?", "We need your SOC 2 report for our vendor review.",
        "There's an active session on a device I don't own.",
        "I'd like to responsibly report an XSS vulnerability in the comment field.",
        "Suspicious login attempts are coming in every few minutes.",
        "A former employee may still have access, can you revoke all sessions?",
        "Do you have a bug bounty or disclosure policy?", "Someone is impersonating your support team on social media.",
        "Where are your servers located and who are your subprocessors?", "My API key was committed to a public repo, how do I rotate it?"],
    "other": [
        "Who can I talk to about a partnership?", "Do you have an office in Berlin?",
        "Just wanted to say thanks, the support was great.", "Are you hiring?", "Can I get a copy of your press kit?",
        "I have a question.", "Is anyone there?", "What are your opening hours at weekends?", "Please call me back.",
        "I'm writing a school project about your company.", "Which accessory would you recommend for it?",
        "Wrong department, sorry.", "Please see my previous message.", "Can you forward this to the right person?",
        "Do you have a newsletter I can sign up to?", "Is there a physical shop I can visit?"],
}
HARD = {  # negations, cross-label vocabulary, multi-topic tickets where the primary intent decides
    "billing": [
        "I don't want a refund, I just want to know why I was charged twice.",
        "Not cancelling, but why was the renewal {amount} instead of {amount2}?",
        "I can log in fine, the problem is that the invoice lists the wrong plan.",
        "The package arrived, no issue there, but I paid for shipping that was supposed to be free.",
        "This isn't a bug report, the app works, it's that my card was debited twice.",
        "I'm not asking for my money back, just a corrected invoice with our VAT ID.",
        "The refund from last month arrived, thanks. Now this month's charge is double what it should be.",
        "The order is fine, but the tax on the receipt looks wrong.",
        "My account email changed, so please send the invoices to the new one going forward.",
        "Nothing's broken, I just don't understand why I'm paying for the Team plan when we're on Plus.",
        "We don't want to cancel, we just need the annual payment moved to a different card."],
    "account": [
        "I need to set a new security question for my account recovery.",
        "Not a billing question: how do I change the email I sign in with?",
        "The app works fine, I just can't remember my password.",
        "I don't want to cancel anything, I just want to move my subscription to my work login.",
        "My colleague is now in charge of the team, please make her the owner.",
        "Nobody hacked me, I just locked myself out after typing the wrong code.",
        "The invoices go to my old address because I can't change the email on my profile.",
        "Order history is fine, but I need my old username back.",
        "Not a security issue, I simply forgot which phone number is linked to two-factor."],
    "bug": [
        "The login page has a typo, it says 'pasword'.", "Clicking 'Download invoice' gives {error}.",
        "The refund button in the order history overlaps the price on mobile.",
        "The cancel button on the edit form actually saves the changes.",
        "Not a feature request, it's broken: the calendar skips February 29.",
        "The battery charge indicator in the companion app always shows 0%.",
        "The security tab in settings is completely blank.",
        "Tracking links in your shipping emails open a blank page.",
        "It's not my password, the sign-in button just doesn't respond on {device}.",
        "The billing page shows my plan as expired although it renewed fine.",
        "When I change my profile email the page throws {error}.",
        "I'm not asking for new features, the existing export just outputs garbage characters.",
        "The new account screen loops back to itself after I press continue."],
    "shipping": [
        "I don't need a refund, I just want to know where my parcel is.",
        "Not cancelling, just want to know when {order} will arrive.",
        "The express shipping charge was fine but the parcel still came {n} days late.",
        "My billing address is different, please make sure it goes to the delivery address.",
        "No problem with the product, the courier just left it out in the rain.",
        "I paid already, now the tracking page says the parcel was returned to sender.",
        "The app says my order was delivered but {carrier} still has it at the depot."],
    "refund": [
        "The app keeps crashing, so I want my money back for this month.",
        "Your update broke the export and I'd like to be reimbursed for the weeks I couldn't use it.",
        "The parcel came three weeks late and I don't need it anymore, please return my money.",
        "I already cancelled, now I just need the money for the remaining months.",
        "Not asking for a replacement, just the money back for {order}.",
        "I was charged after my trial ended without using anything, please give it back.",
        "The item is fine but it's the wrong colour, so I'll send it back for my money."],
    "feature": [
        "Not a bug, but it would be great if the export included timestamps.",
        "Everything works, I'd just love {feature}.",
        "Would be nice to add a second billing contact on invoices.",
        "Could you add a hardware security key option for login? Our IT team would love it.",
        "I'd love to see estimated delivery times on the order page.",
        "It isn't broken, but a confirmation before deleting would stop me making mistakes.",
        "Not complaining about the price, but a yearly view of spending in the app would help.",
        "Login works fine, but an option to stay signed in for 30 days would be nice."],
    "cancellation": [
        "My order hasn't shipped yet, please stop it before it does.",
        "I don't want a refund, just stop charging me from next month.",
        "The app has too many bugs for us, please end our plan at renewal.",
        "Please close my account and end the subscription.",
        "The delivery is taking too long so I'd rather call the whole order off.",
        "No need to fix the sync issue anymore, we're leaving at the end of the month.",
        "We don't need the extra features, just let the contract lapse and don't bill us again."],
    "security": [
        "Someone used my card to buy {product} on your site.",
        "I didn't request a password reset but got three reset emails tonight.",
        "There's an order shipping to an address I've never lived at, I think my account was compromised.",
        "Not a billing issue: there's a login from an unknown device in my history.",
        "The invoice PDF link is public, anyone with the link can see our customer details.",
        "I'm not locked out, but my login history shows sign-ins at 3am from a city I've never been to."],
    "other": [
        "Quick question, nothing wrong with my order or billing: do you have a newsletter?",
        "Your agent {name} was very helpful with my refund last week, please pass on my thanks.",
        "Just following up.", "Not about an order. Do you sponsor local events?",
        "No issue with my account, I'm just curious whether you're a B Corp.",
        "I wanted to give feedback about the shipping boxes, they're lovely.",
        "Is there a number I can call? I'd rather speak to someone."],
}
AMBIGUOUS = [  # genuinely ambiguous: label drawn from the candidates
    ("I was charged after I cancelled, what happened?", ["billing", "cancellation", "refund"]),
    ("The app logged me out and now my subscription shows as expired.", ["account", "billing", "bug"]),
    ("My order was cancelled by itself and the money hasn't come back.", ["refund", "cancellation", "shipping"]),
    ("I can't open the invoices page at all.", ["bug", "billing", "account"]),
    ("Can I pause my plan over the summer instead of paying?", ["cancellation", "billing", "feature"]),
    ("Someone else's name appears on my invoice.", ["billing", "security"]),
    ("Do you support hardware security keys?", ["feature", "security"]),
    ("The cancel button in the app is greyed out.", ["bug", "cancellation"]),
    ("I never received the verification email for my order.", ["account", "shipping", "bug"]),
    ("Please delete all my data.", ["account", "security", "cancellation"]),
    ("Why is shipping so expensive for such a small item?", ["shipping", "billing"]),
    ("The replacement you sent is also broken.", ["refund", "shipping", "bug"]),
    ("I don't get what I'm paying for anymore.", ["billing", "cancellation", "other"]),
    ("If you added {feature} I wouldn't have to leave.", ["feature", "cancellation"]),
    ("Reminder emails keep coming even though I turned them off.", ["bug", "account"]),
    ("My discount disappeared after I changed plans.", ["billing", "bug"]),
    ("Got an email saying my card was updated, I didn't do that.", ["security", "billing", "account"]),
    ("Nothing works since yesterday, what's going on?", ["bug", "other"]),
]
AMBIGUOUS += [
    ("My card was charged but the order never showed up in my account.", ["billing", "shipping", "account"]),
    ("The app says my payment failed but the bank says it went through.", ["billing", "bug"]),
    ("I'd like to stop paying for the extra seats.", ["cancellation", "billing"]),
    ("My login stopped working right after I updated the app.", ["account", "bug"]),
    ("I got charged for express delivery and it came late.", ["shipping", "refund", "billing"]),
    ("Can someone look at my account? Something is off.", ["account", "security", "other"]),
    ("The order page shows {order} as both cancelled and shipped.", ["bug", "shipping", "cancellation"]),
    ("I'm thinking about leaving unless the sync gets fixed.", ["cancellation", "bug"]),
    ("Half my order arrived, do I pay for the rest?", ["shipping", "billing"]),
    ("I keep getting logged out every few minutes.", ["bug", "account", "security"]),
    ("There's a {amount} difference between the quote and the bill.", ["billing", "refund"]),
    ("Strange emails from your domain asking me to confirm my payment details.", ["security", "billing"]),
]
# compositional hard cases: the same phrases appear as primary request in one ticket and as negated /
# secondary topic in another, so only the structure (negation, "so", "but that's sorted") decides the label
NP = {
    "billing": ["an explanation of the {amount} charge", "a corrected invoice", "the invoice for {order}", "a proper receipt",
                "the card on file updated", "a breakdown of my bill", "the VAT number fixed on my invoices"],
    "account": ["access to my account again", "my login email changed", "a working password reset link",
                "my two-factor reset", "the workspace owner changed", "my username changed back"],
    "bug": ["the crash fixed", "the export working again", "sync working again", "someone to look at {error}",
            "the app to stop freezing", "the broken search fixed"],
    "shipping": ["news on where my parcel is", "the delivery address changed", "a tracking update on {order}",
                 "the parcel actually delivered", "a delivery date for {order}"],
    "refund": ["a refund", "my money back", "the {amount} refunded", "a reimbursement for {order}", "the payment reversed"],
    "feature": ["{feature} added", "an option for {feature}", "{feature} on the roadmap", "a setting for {feature}"],
    "cancellation": ["a cancellation", "the subscription cancelled", "the plan ended at renewal", "the order called off",
                     "the membership closed"],
    "security": ["all my sessions revoked", "someone to check the strange logins", "the break-in investigated",
                 "the leaked API key disabled"],
    "other": ["a quick chat with someone", "a contact for partnerships", "a call back sometime", "your press kit"],
}
SIT = {
    "billing": ["I was charged twice this month", "my card was billed {amount} {date}", "the invoice had the wrong VAT number",
                "the price went up without notice", "the renewal charge was higher than usual"],
    "account": ["I can't log in", "my password reset email never came", "I lost my two-factor codes",
                "my account got locked", "my login email is outdated"],
    "bug": ["the app keeps crashing", "the export produces blank files", "sync has been broken since the update",
            "I keep getting {error}", "the dashboard won't load on {device}"],
    "shipping": ["my parcel arrived {n} days late", "the courier lost my package", "the parcel for {order} went to the wrong address",
                 "the box arrived crushed", "tracking hasn't moved in a week"],
    "refund": ["I returned the item last week", "you promised me a refund", "the refund still hasn't arrived",
               "I sent {product} back"],
    "feature": ["the app doesn't have {feature}", "there's still no {feature}", "{feature} is missing"],
    "cancellation": ["I cancelled last month", "I tried to cancel my plan", "we decided to leave",
                     "I asked you to end the subscription"],
    "security": ["someone logged into my account from abroad", "I got a phishing email in your name",
                 "there's a session I don't recognise", "my password was changed by someone else"],
    "other": ["your agent was really friendly", "I saw your ad on the train", "a friend told me about you"],
}
REQ = {
    "billing": ["please explain the charge", "please send a corrected invoice", "can you tell me why I was billed that amount?",
                "please put the new card on file", "which payment is the right one?"],
    "account": ["please help me get back into my account", "can you reset my login?", "please change the email on my profile",
                "please unlock my account", "how do I get my username back?"],
    "bug": ["please fix it", "can your developers look into it?", "please get the export working again",
            "is there a workaround?", "when will a patch be out?"],
    "shipping": ["where is my parcel now?", "please send it to the right address", "when will it actually arrive?",
                 "please resend the package", "can you chase the courier?"],
    "refund": ["I want my money back", "please refund me", "I'd like a refund", "please reimburse the {amount}",
               "please reverse the payment"],
    "feature": ["please add {feature}", "could you build {feature}?", "consider adding {feature}",
                "any chance of {feature} this year?"],
    "cancellation": ["please cancel my subscription", "I want to cancel", "please stop the renewal",
                     "please close our plan", "please call off the order"],
    "security": ["please lock my account down and check the logins", "can you investigate this?",
                 "please revoke all sessions", "can you confirm whether my data was exposed?"],
    "other": ["just wanted to let you know", "who should I talk to?", "please pass on my thanks", "no action needed"],
}
NEG = ["I don't want {np}", "I'm not asking for {np}", "I don't need {np}", "I'm not looking for {np}",
       "I'm not after {np}", "no need for {np}"]
WANT = ["I just want {np}", "all I need is {np}", "what I actually need is {np}", "I only want {np}", "I'd just like {np}"]
PAIRS = ["billing refund", "billing cancellation", "billing account", "billing shipping", "account security",
         "account bug", "bug feature", "bug refund", "bug cancellation", "shipping refund", "shipping cancellation",
         "refund cancellation", "feature cancellation", "security billing", "security bug", "other shipping",
         "other refund", "other account", "other bug", "other billing"]
CONFUSE = {l: [b if a == l else a for a, b in map(str.split, PAIRS) if l in (a, b)] for l in LABELS}
CAUSAL = {("bug", "refund"), ("bug", "cancellation"), ("shipping", "refund"), ("shipping", "cancellation"),
          ("billing", "refund"), ("billing", "cancellation"), ("feature", "cancellation"), ("cancellation", "billing"),
          ("cancellation", "refund"), ("security", "account"), ("account", "security"), ("security", "cancellation"),
          ("refund", "billing"), ("account", "bug"), ("bug", "feature")}


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def stop(s: str) -> str:
    return s if s.endswith(("?", ".", "!")) else s + "."


def hard_core(label: str, sec: str, rng: random.Random) -> str:
    form = rng.random()
    if label == "other" or form < 0.2:
        return cap(rng.choice(SIT[sec])) + rng.choice([", but that's sorted now. ", " but that got fixed, thanks. ",
                                                       ", anyway that part is fine now. "]) + cap(stop(rng.choice(REQ[label])))
    if form < 0.4 and (sec, label) in CAUSAL:
        return cap(rng.choice(SIT[sec])) + rng.choice([", so ", ". So ", " and because of that "]) + stop(rng.choice(REQ[label]))
    if form < 0.85:
        neg, want = rng.choice(NEG).format(np=rng.choice(NP[sec])), rng.choice(WANT).format(np=rng.choice(NP[label]))
        return cap(neg) + ", " + stop(want) if rng.random() < 0.6 else cap(want) + ", " + stop(neg)
    return cap(stop(rng.choice(REQ[label]))) + " " + cap(rng.choice(SIT[sec])) + rng.choice(
        [" too, but that's a separate thing.", " as well, but that can wait.", " by the way, though that's minor."])


def plain_core(label: str, rng: random.Random, extra=None) -> str:
    if rng.random() < 0.3:
        return cap(rng.choice(SIT[label])) + rng.choice([". ", ", ", " - "]) + stop(rng.choice(REQ[label] + [
            w.format(np=rng.choice(NP[label])) for w in WANT]))
    return rng.choice(INTENTS[label] + (extra[label] if extra else []))


DETAILS = {
    "billing": ["The transaction reference is {ref}.", "The charge was {date}.", "It's on the card ending in 4242.",
                "I've attached a screenshot of the statement.", "Our finance team needs this before month end."],
    "account": ["I've tried three different browsers.", "I already checked the spam folder.",
                "The email on file is my old university one.", "I'm the only admin so nobody else can fix it."],
    "bug": ["Steps: open the app, go to reports, pick any project.", "It happens on {device} too.",
            "Screenshot attached.", "It started after version 4.2.", "Restarting doesn't help."],
    "shipping": ["The tracking page hasn't changed since {date}.", "I need it for a birthday on Saturday.",
                 "The neighbours haven't seen it either.", "I paid for next-day delivery."],
    "refund": ["I sent it back with {carrier}.", "The return was confirmed {date}.", "I still have the original packaging.",
               "It was for {order}."],
    "feature": ["Happy to beta test.", "Several people on my team asked for this.", "Competitors already have it.",
                "Even a basic version would be fine."],
    "cancellation": ["Please confirm by email once it's done.", "I don't want to be charged again.",
                     "We'll export our data first.", "Thanks for the years of service."],
    "security": ["I've already changed my password.", "I can send the email headers if useful.",
                 "Please treat this as urgent.", "Nothing else in the account looks changed."],
    "other": ["No rush at all.", "Thanks either way.", "I'll check back later.", "Sorry if this is the wrong inbox."],
}

# production-only: new product names and extra phrasings, typos, txt-speak
PROD_SLOTS = dict(SLOTS, product=[
    "the Aurora X2", "Nova Studio", "the Enterprise Max plan", "the Quantum Dock", "PulseWatch 3", "the Student bundle",
    "HomeCam Mini", "Vireo Pay", "the Solo Creator plan", "Tidewater Hub", "the Zephyr earbuds", "Nimbus Vault",
    "the Falcon router", "Lumos Sketch", "the Cobalt keyboard", "the Growth plan"])
PROD_EXTRA = {
    "billing": ["The new Growth plan pricing confuses me, the checkout total and the bill don't match.",
                "We got two bills for {product} this cycle and finance wants one merged bill."],
    "account": ["After the migration to the new login system my workspace is gone from the switcher.",
                "The passkey I set up on my old phone is the only way in and that phone is dead."],
    "bug": ["Since the 5.0 release {product} disconnects every few minutes and loses unsaved work.",
            "The companion app crashes on launch after pairing {product}.",
            "Firmware 2.1 bricked {product}, it just blinks orange now."],
    "shipping": ["{product} was supposed to ship in the launch batch but the status still says preorder.",
                 "The courier handed my {product} parcel to a neighbour I don't know."],
    "refund": ["{product} didn't live up to the ad, I'd like my money returned in full.",
               "The preorder for {product} was delayed twice, so please give me my money back."],
    "feature": ["{product} badly needs an import from spreadsheets.", "Please bring widgets to {product} on tablets."],
    "cancellation": ["We're moving off {product} when the quarter ends, please wind the plan down.",
                     "I only bought {product} for a project that is over, stop it please."],
    "security": ["A login from a TOR exit node showed up on my {product} account overnight.",
                 "{product} is sending session tokens in the URL, that looks like a vulnerability.",
                 "Someone added an unknown recovery email to my {product} account."],
    "other": ["Do you have a student ambassador programme for {product}?", "Will {product} be at the trade fair in May?"],
}
TXT = {"you": "u", "your": "ur", "please": "pls", "thanks": "thx", "are": "r", "because": "bc", "really": "rly",
       "message": "msg", "tomorrow": "tmrw", "before": "b4", "people": "ppl", "though": "tho", "why": "y"}

# over-long rows: pasted logs and long email threads
LOG_LINES = ["[{t}] INFO  SyncWorker: starting batch {k} (items={m})", "[{t}] WARN  HttpClient: retrying request after 503",
             "[{t}] ERROR SyncWorker: timeout after 30000 ms on item {k}", "[{t}] DEBUG Cache: evicted {m} stale entries",
             "[{t}] ERROR Uploader: chunk {k} rejected, checksum mismatch", "[{t}] INFO  Auth: token refreshed for session",
             "[{t}] WARN  Db: slow query took {m} ms on table attachments", "[{t}] ERROR Renderer: null reference in ChartView line {m}"]
THREAD_TURNS = ["Thanks for getting back to me, but the problem is still there and I have now waited more than a week.",
                "As I explained in my first message, I have tried everything your colleague suggested, step by step.",
                "Could you please escalate this to someone who can actually look at my order history and the payments?",
                "I appreciate the quick reply, however it does not answer my question at all, so let me repeat it.",
                "We apologise for the inconvenience and have passed your case to the relevant team for review.",
                "Please allow three to five working days for the team to investigate and come back to you.",
                "I have attached the screenshots again in case they were lost the last time I sent them over.",
                "This has now taken far longer than it should, and I am starting to lose patience with the process."]


# --------------------------------------------------------------------------- helpers
def words(t: str) -> set[str]:
    return set(re.sub(r"[^\w\s]", "", t.lower()).split())


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def normalise(t: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", re.sub(r"\d+", "0", t.lower()))).strip()


def quota(n: int, skew: list[int], rng: random.Random) -> list[str]:
    """Exactly proportional labels (largest remainder), shuffled."""
    raw = [n * w / sum(skew) for w in skew]
    cnt = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: cnt[i] - raw[i])[: n - sum(cnt)]:
        cnt[i] += 1
    out = [l for l, c in zip(LABELS, cnt) for _ in range(c)]
    rng.shuffle(out)
    return out


def too_close(ws: set, pool: list[set], thr: float = 0.5) -> bool:
    return any(jaccard(ws, p) >= thr for p in pool)


def compose(label: str, rng: random.Random, channel: str, slots=SLOTS, extra=None, long=False) -> tuple[str, str]:
    """Return (text, kind) with kind in {'plain', 'hard', 'ambiguous'}."""
    r = rng.random()
    amb = [t for t, c in AMBIGUOUS if label in c]
    if r < P_AMB and amb:
        core, kind = [rng.choice(amb)], "ambiguous"
    elif r < P_HARD:
        core, kind = [None], "hard"
    else:
        core, kind = [plain_core(label, rng, extra)], "plain"
    other = rng.choice([l for l in LABELS if l != label])
    sec = rng.choice(CONFUSE[label]) if kind == "hard" else label
    parts = []
    if channel == "phone" and rng.random() < 0.5:
        parts.append(rng.choice(PHONE_OPENERS))
    elif rng.random() < 0.5:
        parts.append(rng.choice(OPENERS))
    if rng.random() < (0.7 if long else 0.35):
        parts.append(rng.choice(CONTEXT[other]))
    if long and rng.random() < 0.5:
        parts.append(rng.choice(CONTEXT[rng.choice(LABELS)]))
    if core == [None]:
        core = [rng.choice(HARD[label]) if rng.random() < 0.2 else hard_core(label, sec, rng)]
    parts += core
    if kind == "plain" and extra and rng.random() < 0.5:
        parts.append(rng.choice(extra[label]))
    if rng.random() < (0.8 if long else 0.35):
        parts.append(rng.choice(DETAILS[rng.choice([label, sec])]))
    if rng.random() < (0.4 if long else 0.15):
        parts.append(rng.choice(URGENCY))
    if rng.random() < (0.6 if long else 0.35):
        parts.append(rng.choice(SIGNOFFS))
    text = fill(" ".join(parts), rng, slots)
    if len(text) > 1 and rng.random() < 0.05:  # hurried lower-case writers
        text = text.lower()
    return text, kind


def typo(text: str, rng: random.Random) -> str:
    out = []
    for w in text.split(" "):
        core = w.lower().strip(".,!?")
        if core in TXT and rng.random() < 0.6:
            w = w.lower().replace(core, TXT[core])
        elif len(w) > 3 and w.isalpha() and rng.random() < 0.18:
            i = rng.randrange(1, len(w) - 1)
            op = rng.choice(["swap", "drop", "double"])
            w = (w[:i] + w[i + 1] + w[i] + w[i + 2:] if op == "swap" else
                 w[:i] + w[i + 1:] if op == "drop" else w[:i] + w[i] + w[i:])
        out.append(w)
    text = " ".join(out)
    if rng.random() < 0.6:
        text = text.lower()
    if rng.random() < 0.3:
        text = text.replace(".", "").replace(",", "")
    return text


SYN = {"hi": "hello", "please": "pls", "can't": "cannot", "order": "purchase", "thanks": "thank you", "app": "application",
       "i'm": "i am", "don't": "do not", "isn't": "is not", "it's": "it is", "parcel": "package", "card": "credit card",
       "invoice": "bill", "week": "few days", "wrong": "incorrect", "still": "yet"}
DELETABLE = {"just", "really", "please", "so", "also", "still", "very", "now", "again", "actually", "hi", "thanks",
             "hello", "hey", "quite", "all", "even", "already", "anyway", "honestly", "ty", "thx", "cheers"}
FILLERS = ["really", "still", "just", "honestly", "again", "now", "actually"]


def paraphrase(text: str, rng: random.Random) -> str:
    toks = text.split(" ")
    for _ in range(rng.randint(1, 2)):
        op = rng.choice(["syn", "insert", "delete", "signoff"])
        if op == "syn":
            idx = [i for i, t in enumerate(toks) if t.lower().strip(".,!?") in SYN]
            if idx:
                i = rng.choice(idx)
                core = toks[i].lower().strip(".,!?")
                toks[i] = toks[i].lower().replace(core, SYN[core])
                continue
        dels = [i for i, t in enumerate(toks) if t.lower().strip(".,!?") in DELETABLE]
        if op == "delete" and dels:
            del toks[rng.choice(dels)]
        elif op == "signoff":
            toks.append(rng.choice(["Thanks!", "Cheers.", "Thank you.", "Regards."]))
        else:
            subj = [i + 1 for i, t in enumerate(toks[:-1]) if t.lower() in ("i", "i'm", "we", "we're", "it's")]
            if subj:
                toks.insert(rng.choice(subj), rng.choice(FILLERS))
            else:
                toks.append(rng.choice(["Thanks!", "Cheers.", "Thank you.", "Regards."]))
    return " ".join(toks)


def renormalise(text: str, rng: random.Random) -> str:
    """Vary case/whitespace/punctuation/digits only, so normalise() stays equal."""
    t = re.sub(r"\d", lambda m: str(rng.randrange(10)), text) if re.search(r"\d", text) else text
    ops = [lambda s: s.lower(), lambda s: s.upper(), lambda s: s.rstrip(".!?") + "!!", lambda s: "  " + s + " ",
           lambda s: s.replace(", ", ",  "), lambda s: s.rstrip(".") if s.endswith(".") else s + ".",
           lambda s: s.replace(" ", "  ", 2)]
    for op in rng.sample(ops, 2):
        t = op(t)
    return t if t != text else text + "?"


# --------------------------------------------------------------------------- raw export
def make_raw(rng: random.Random):
    rows = []  # dicts: text, label, channel, kind, tags
    pool: list[set] = []
    norms: set[str] = set()

    def new_unique(label, channel, slots=SLOTS, long=False, tries=400):
        for _ in range(tries):
            text, kind = compose(label, rng, channel, slots, long=long)
            ws = words(text)
            if normalise(text) not in norms and not too_close(ws, pool):
                pool.append(ws)
                norms.add(normalise(text))
                return text, kind
        raise RuntimeError(f"could not generate a unique {label} ticket")

    n_pii = 98
    for label in quota(N_CLEAN + n_pii, RAW_SKEW, rng):
        ch = rng.choice(CHANNELS)
        text, kind = new_unique(label, ch, long=rng.random() < 0.12)
        rows.append(dict(text=text, label=label, channel=ch, kind=kind, tags=set(), src=None))
    # PII on the last 98 base rows: 60 e-mail, 40 phone (8 overlap), 10 card (4 overlap)
    first, last = ["alex", "jordan", "sam", "maria", "li", "noah", "emma", "raj", "zoe", "karl"], \
                  ["smith", "garcia", "nguyen", "muller", "okafor", "rossi", "kowalski", "tanaka", "brown", "silva"]
    phones = ["+1 415-555-01{d}{d}", "(020) 7946 0{d}{d}{d}", "555.123.45{d}{d}", "+1 (212) 555-01{d}{d}",
              "+44 20 7946 0{d}{d}{d}", "555-01{d}{d}", "+1 650 555 01{d}{d}", "0113 496 0{d}{d}{d}"]
    cards = ["4111 1111 1111 1111", "5555 5555 5555 4444", "4242 4242 4242 4242", "4000-0566-5566-5556",
             "5105 1051 0510 5100", "6011 1111 1111 1117", "4012 8888 8888 1881", "2223 0031 2200 3222"]
    email_tpl = ["You can reach me at {e}.", "My email is {e} in case the form drops it.", "Please reply to {e}, not the old one.",
                 "Registered address: {e}.", "cc {e}", "Contact: {e}", "I also tried from {e}."]
    phone_tpl = ["Call me on {p}.", "My number is {p} if easier.", "Phone: {p}", "You can text me at {p}.",
                 "Best number to reach me is {p} after 5pm."]
    card_tpl = ["I paid with card {c}, exp 12/27.", "The card used was {c}.", "Charged to {c} I think.",
                "Card number {c} if you need it to find the payment."]
    pii_rows = rows[N_CLEAN:]
    for j, row in enumerate(pii_rows):
        for _ in range(100):  # the added sentence must not make two PII rows look alike
            add, tags = [], set()
            if j < 60:
                e = (f"{rng.choice(first)}{rng.choice(['.', '_', ''])}{rng.choice(last)}{rng.choice(['', str(rng.randrange(10, 99))])}"
                     f"@{rng.choice(['example.com', 'example.org', 'mail.example.com'])}")
                add.append(rng.choice(email_tpl).format(e=e)); tags.add("pii_email")
            if 52 <= j < 92:
                p = re.sub(r"\{d\}", lambda m: str(rng.randrange(10)), rng.choice(phones))
                add.append(rng.choice(phone_tpl).format(p=p)); tags.add("pii_phone")
            if j >= 88:
                add.append(rng.choice(card_tpl).format(c=rng.choice(cards))); tags.add("pii_card")
            rng.shuffle(add)
            t = row["text"] + " " + " ".join(add) if rng.random() < 0.7 else " ".join(add) + " " + row["text"]
            if not too_close(words(t), [p for k, p in enumerate(pool) if k != N_CLEAN + j]):
                break
        else:
            raise RuntimeError("PII row too close to another row")
        row["text"], row["tags"] = t, tags
        pool[N_CLEAN + j] = words(t)
    clean = rows[:N_CLEAN]
    # sources: every planted duplicate points at a distinct clean row
    order = list(range(N_CLEAN))
    rng.shuffle(order)
    conflict_src = [i for i in order if clean[i]["kind"] != "plain"][:25]
    rest = [i for i in order if i not in set(conflict_src)]
    long_enough = [i for i in rest if len(words(clean[i]["text"])) >= 14]
    near_src = long_enough[:60]
    rest = [i for i in rest if i not in set(near_src)]
    exact_src, norm_src = rest[:40], rest[40:70]
    plants = []
    for i in exact_src:
        plants.append(dict(clean[i], tags={"exact_duplicates"}, src=i, kind="dup"))
    for i in norm_src:
        plants.append(dict(clean[i], text=renormalise(clean[i]["text"], rng), tags={"normalised_duplicates"}, src=i, kind="dup"))
    confuse = {"billing": ["refund", "cancellation"], "account": ["security", "bug"], "bug": ["feature", "account"],
               "shipping": ["refund", "cancellation"], "refund": ["billing", "shipping"], "feature": ["bug", "other"],
               "cancellation": ["billing", "refund"], "security": ["account", "bug"], "other": ["feature", "billing"]}
    for k, i in enumerate(conflict_src):
        t = clean[i]["text"] if k % 2 == 0 else renormalise(clean[i]["text"], rng)
        plants.append(dict(clean[i], text=t, label=rng.choice(confuse[clean[i]["label"]]), tags={"conflicts"}, src=i, kind="dup"))
    others = pool  # clean + final PII word sets
    for i in near_src:
        src_ws = words(clean[i]["text"])
        for _ in range(200):
            t = paraphrase(clean[i]["text"], rng)
            ws = words(t)
            if normalise(t) != normalise(clean[i]["text"]) and jaccard(ws, src_ws) >= 0.7 and \
                    not any(jaccard(ws, p) >= 0.5 for j, p in enumerate(others) if j != i):
                break
        else:
            raise RuntimeError("paraphrase failed")
        plants.append(dict(clean[i], text=t, tags={"near_duplicates"}, src=i, kind="dup"))
    trivial = ["", "   ", "asdf", "?", "help", "test", "hello??", "x", "n/a", "pls"]
    for t in trivial:
        plants.append(dict(text=t, label="other", channel=rng.choice(["web", "chat"]), kind="trivial",
                           tags={"empty_or_trivial"}, src=None))
    for k in range(8):
        plants.append(dict(over_long(k, rng), channel="email", kind="long", tags={"over_long"}, src=None))
    return clean, pii_rows, plants


def over_long(k: int, rng: random.Random) -> dict:
    if k % 2 == 0:
        intro = fill(rng.choice(["Sync keeps failing on {device}, full log below.", "The export job dies every night. Log:",
                                 "Here is the console output you asked for, the app froze again.",
                                 "Crash again after the update, pasting everything I have."]), rng)
        lines, target = [intro], rng.randint(420, 780)
        while len(" ".join(lines).split()) < target:
            t = f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}"
            lines.append(rng.choice(LOG_LINES).format(t=t, k=rng.randrange(1, 400), m=rng.randrange(2, 9000)))
        return dict(text="\n".join(lines), label="bug")
    label = rng.choice(["refund", "billing", "shipping", "account"])
    head = fill(rng.choice(HARD[label] + INTENTS[label]), rng)
    parts, target = [head], rng.randint(420, 780)
    while len(" ".join(parts).split()) < target:
        who = rng.choice(SLOTS["name"])
        when = f"{rng.choice(['Mon', 'Tue', 'Wed', 'Thu', 'Fri'])}, {rng.randint(1, 28)} {rng.choice(['Mar', 'Apr', 'May', 'Jun'])}"
        parts.append(f"\n\n> On {when}, {who} from Support wrote:\n> " + " ".join(rng.sample(THREAD_TURNS, 3)))
        parts.append("\n\n" + fill(rng.choice(INTENTS[label]), rng) + " " + " ".join(rng.sample(THREAD_TURNS, 2)))
    return dict(text="".join(parts), label=label)


# --------------------------------------------------------------------------- production
def make_prod(rng: random.Random, raw_texts: list[str]):
    raw_pool = [words(t) for t in raw_texts]
    out, pool = [], []
    n_typo = 0
    labels = quota(N_PROD, PROD_SKEW, rng)
    while len(out) < N_PROD:
        label = labels[len(out)]
        ch = rng.choice(CHANNELS)
        text, kind = compose(label, rng, ch, PROD_SLOTS, extra=PROD_EXTRA, long=True)
        n_sent = len(re.findall(r"[.!?](\s|$)", text))
        if n_sent < 3 or n_sent > 7:
            continue
        if rng.random() < 0.42:
            text, kind = typo(text, rng), kind + "+typo"
        ws = words(text)
        if too_close(ws, raw_pool) or too_close(ws, pool):
            continue
        pool.append(ws)
        out.append(dict(text=text, label=label, channel=ch, kind=kind))
        n_typo += kind.endswith("+typo")
    return out, n_typo


# --------------------------------------------------------------------------- write + verify
def stamp(rows: list[dict], rng: random.Random, start_id: int, year_from: int = 2025) -> None:
    t0 = datetime(year_from, 1, 1)
    span = (datetime(2026, 12, 31) - t0).total_seconds()
    times = sorted(t0 + timedelta(seconds=rng.randrange(int(span))) for _ in rows)
    idx = list(range(len(rows)))
    rng.shuffle(idx)  # ids ascend with time, as in a real export; row order is then shuffled
    for k, i in enumerate(idx):
        rows[i]["ticket_id"] = f"T-{start_id + k:06d}"
        rows[i]["created_at"] = times[k].isoformat(timespec="seconds")


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["ticket_id", "created_at", "channel", "text", "label"])
        for r in rows:
            w.writerow([r["ticket_id"], r["created_at"], r["channel"], r["text"], r["label"]])


EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE_CAND = re.compile(r"(?:\+\d{1,3}[\s-]?)?(?:\(\d{2,4}\)\s?)?\d{2,4}(?:[\s.-]\d{2,4}){1,3}")
CARD_RE = re.compile(r"\b\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{4}\b")


def has_phone(t: str) -> bool:  # 7-13 digits in a phone-shaped run (cards have 16, log times fewer)
    return any(7 <= len(re.sub(r"\D", "", m)) <= 13 for m in PHONE_CAND.findall(CARD_RE.sub(" ", t)))


def verify(clean, pii_rows, plants, prod, n_typo, all_rows, defects):
    byid = {r["ticket_id"]: r for r in all_rows}
    assert len(all_rows) >= 1300 and len(byid) == len(all_rows), "row count / unique ids"
    assert set(r["label"] for r in all_rows) == set(LABELS)
    cws = [words(r["text"]) for r in clean]
    for i in range(len(cws)):  # clean rows: no accidental near-duplicates
        for j in range(i):
            assert jaccard(cws[i], cws[j]) < 0.5, (clean[i]["text"], clean[j]["text"])
    base_norms = [normalise(r["text"]) for r in clean + pii_rows]
    assert len(set(base_norms)) == len(base_norms), "normalised collision among base rows"
    for a, b in defects["exact_duplicates"]:
        assert byid[a]["text"] == byid[b]["text"] and byid[a]["label"] == byid[b]["label"]
    for a, b in defects["normalised_duplicates"]:
        assert byid[a]["text"] != byid[b]["text"] and normalise(byid[a]["text"]) == normalise(byid[b]["text"])
        assert byid[a]["label"] == byid[b]["label"]
    for a, b in defects["near_duplicates"]:
        assert normalise(byid[a]["text"]) != normalise(byid[b]["text"]) and byid[a]["label"] == byid[b]["label"]
        assert jaccard(words(byid[a]["text"]), words(byid[b]["text"])) >= 0.7
        assert not any(jaccard(words(byid[a]["text"]), words(c["text"])) >= 0.5 for c in clean if c["ticket_id"] != b)
    for a, b in defects["conflicts"]:
        assert normalise(byid[a]["text"]) == normalise(byid[b]["text"]) and byid[a]["label"] != byid[b]["label"]
    # globally: every pair with Jaccard >= 0.5 is a planted pair (or two plants of the same source)
    group = {a: b for k in ("exact_duplicates", "normalised_duplicates", "near_duplicates", "conflicts")
             for a, b in defects[k]}
    skip = set(defects["empty_or_trivial"]) | set(defects["over_long"])
    rows = [(r["ticket_id"], words(r["text"])) for r in all_rows if r["ticket_id"] not in skip]
    for i, (a, wa) in enumerate(rows):
        for b, wb in rows[:i]:
            if jaccard(wa, wb) >= 0.5:
                assert group.get(a, a) == group.get(b, b), (byid[a]["text"], byid[b]["text"])
    for i in defects["over_long"]:
        assert 400 <= len(byid[i]["text"].split()) <= 900
    for i in defects["empty_or_trivial"]:
        assert len(byid[i]["text"].split()) <= 1
    for key, hit in [("pii_email", EMAIL_RE.search), ("pii_phone", has_phone), ("pii_card", CARD_RE.search)]:
        hits = {r["ticket_id"] for r in all_rows if hit(r["text"])}
        assert hits == set(defects[key]), (key, sorted(hits ^ set(defects[key]))[:5])
    counts = {k: len(v) for k, v in defects.items()}
    expect = dict(exact_duplicates=40, normalised_duplicates=30, near_duplicates=60, conflicts=25, empty_or_trivial=10,
                  over_long=8, pii_email=60, pii_phone=40, pii_card=10)
    for k, v in expect.items():
        assert counts[k] == v, (k, counts[k])
    assert len(defects["clean"]) == len(clean)
    hard = sum(r["kind"] == "hard" for r in clean) / len(clean)
    amb = sum(r["kind"] == "ambiguous" for r in clean) / len(clean)
    assert 0.24 <= hard <= 0.32 and 0.04 <= amb <= 0.10, (hard, amb)
    # production: shifted, never close to raw, new product names only there
    assert len(prod) >= 180 and set(r["label"] for r in prod) == set(LABELS)
    assert 0.33 <= n_typo / len(prod) <= 0.5, n_typo
    raw_ws = [words(r["text"]) for r in all_rows]
    for p in prod:
        assert not too_close(words(p["text"]), raw_ws), p["text"]
    raw_blob = " ".join(r["text"] for r in all_rows).lower()
    for name in PROD_SLOTS["product"]:
        assert name.lower().removeprefix("the ") not in raw_blob, name
    return hard, amb


def make_pretrain(n: int, taken: list[str]) -> list[str]:
    """Unlabelled support-domain text for the embedded base model's short language-model
    pretraining: a real base model has read text like this before anyone fine-tunes it. Its own
    seed (the exports above do not change), no labels, and no text within Jaccard 0.5 of any
    ticket in the export or the production samples, so nothing evaluated was pretrained on."""
    rng = random.Random(SEED + 7)
    pool = [words(t) for t in taken]
    out = []
    while len(out) < n:
        text, _ = compose(rng.choice(LABELS), rng, rng.choice(CHANNELS), long=rng.random() < 0.2)
        ws = words(text)
        if not too_close(ws, pool):
            out.append(text)
    return out


def main(check: bool = False) -> None:
    rng = random.Random(SEED)
    clean, pii_rows, plants = make_raw(rng)
    all_rows = clean + pii_rows + plants
    stamp(all_rows, rng, start_id=100)
    rng.shuffle(all_rows)
    write_csv(DATA / "tickets_raw.csv", all_rows)
    ids = lambda rows: sorted(r["ticket_id"] for r in rows)
    pair = lambda tag: sorted([p["ticket_id"], clean[p["src"]]["ticket_id"]] for p in plants if tag in p["tags"])
    tagged = lambda tag: sorted(r["ticket_id"] for r in pii_rows + plants if tag in r["tags"])
    defects = {"exact_duplicates": pair("exact_duplicates"), "normalised_duplicates": pair("normalised_duplicates"),
               "near_duplicates": pair("near_duplicates"), "conflicts": pair("conflicts"),
               "empty_or_trivial": tagged("empty_or_trivial"), "over_long": tagged("over_long"),
               "pii_email": tagged("pii_email"), "pii_phone": tagged("pii_phone"), "pii_card": tagged("pii_card"),
               "clean": ids(clean)}
    (DATA / "planted_defects.json").write_text(
        "{\n" + ",\n".join(f' "{k}": {json.dumps(v)}' for k, v in defects.items()) + "\n}\n", encoding="utf-8")

    prod, n_typo = make_prod(rng, [r["text"] for r in all_rows])
    stamp(prod, rng, start_id=500000, year_from=2026)
    write_csv(DATA / "production_samples.csv", prod)

    pre = make_pretrain(4000, [r["text"] for r in all_rows + prod])
    (DATA / "pretrain_corpus.txt").write_text("\n".join(t.replace("\n", " ") for t in pre) + "\n", encoding="utf-8")

    clean_ids = set(defects["clean"])
    first = [r for r in all_rows if r["ticket_id"] in clean_ids][:20]
    ex = DATA / "examples"
    ex.mkdir(parents=True, exist_ok=True)
    with (ex / "tickets.instruction.jsonl").open("w", encoding="utf-8", newline="\n") as f:
        for r in first:
            f.write(json.dumps({"instruction": INSTRUCTION, "input": r["text"], "output": r["label"]}, ensure_ascii=False) + "\n")
    with (ex / "tickets.chat.jsonl").open("w", encoding="utf-8", newline="\n") as f:
        for r in first:
            msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": r["text"]},
                    {"role": "assistant", "content": r["label"]}]
            f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")

    hard, amb = verify(clean, pii_rows, plants, prod, n_typo, all_rows, defects)
    from collections import Counter
    print(f"raw rows: {len(all_rows)} (clean {len(clean)}; hard share {hard:.2f}, ambiguous share {amb:.2f})")
    print("raw labels:", dict(Counter(r["label"] for r in all_rows).most_common()))
    print(f"production rows: {len(prod)} (typo rows {n_typo})")
    print("production labels:", dict(Counter(r["label"] for r in prod).most_common()))
    print("defects:", {k: len(v) for k, v in defects.items()})
    if check:
        tfidf_check([r for r in all_rows if r["ticket_id"] in clean_ids], prod)


def tfidf_check(clean, prod):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    X, y = [r["text"] for r in clean], [r["label"] for r in clean]
    xp, yp = [r["text"] for r in prod], [r["label"] for r in prod]
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    for name, kw, lr in [("default", {}, {}), ("sublinear, C=10", {"sublinear_tf": True}, {"C": 10})]:
        mk = lambda: make_pipeline(TfidfVectorizer(ngram_range=(1, 2), **kw), LogisticRegression(max_iter=2000, **lr))
        p = mk().fit(xtr, ytr).predict(xte)
        q = mk().fit(X, y).predict(xp)
        print(f"[{name}] raw clean 80/20: acc={accuracy_score(yte, p):.3f} macroF1={f1_score(yte, p, average='macro'):.3f}"
              f" | raw clean -> production: acc={accuracy_score(yp, q):.3f} macroF1={f1_score(yp, q, average='macro'):.3f}")


if __name__ == "__main__":
    main(check="--check" in sys.argv)
