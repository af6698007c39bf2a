"""On-site client service (现场客户服务系统), API branch.onsite.v1.

- The client manager's day: a plan per manager and date (clients to visit, rooms to patrol,
  consultation targets), visit and patrol records, quotas per role or per staff member
  (default 10 visits and 3 rooms a day), and compliance per manager per day or week.
  Visits and plans name only on-site, active clients the directory knows and has assigned to
  the manager; a supervisor may act for anyone.
- Consultation forms (咨询表): raised with a copy of the client's holdings from the directory,
  analysed by their consultant with advice of risk R1-R5 under the suitability rule (tolerance
  C_m >= R_n and an assessment younger than two years, or a recorded override that flags the
  form), delivered with the client's acknowledgement, or cancelled with a reason. A delivery
  deadline (24 h by default, UpdateOnsiteSettings) is watched by a timer that raises
  branch.onsite.consultation.overdue once per form, safely with several replicas.
- Exchange meetings (客户交流会): weekly series, one-off meetings, registrations with a waiting
  list that moves up, attendance, linked research note ids.
- Publishes branch.onsite.{visit.recorded, patrol.recorded, consultation.raised, analysed,
  delivered, cancelled, overdue, meeting.scheduled, held}; consumes
  branch.directory.client.{updated, tier_changed}: a client who turns remote or leaves drops
  out of today's and later plans, their open forms are flagged, and a client who leaves gives
  up places in meetings still to come.
"""
