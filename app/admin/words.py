"""The console's "Word lists": the sensitive-word lists (app/wordfilter), made, edited, filled
from a UTF-8 file and deleted through app/wordfilter/services.py (audited; this process's
automaton is rebuilt at once, the others' within WORDFILTER_CACHE_SECONDS)."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from app.admin.base import AdminOnly, ReasonForm
from app.errors import ApiError
from app.extensions import db
from app.locales import _, _l
from app.models import WordList
from app.validation import FORM_BODY_LIMITS
from app.wordfilter import services

ENDPOINT = "wordlists"
# The word forms carry a whole list: its cap, and room for the form's other fields. A file
# just over the cap reaches the service, which says so; a far larger body is refused (413)
# before it is read.
FORM_BODY_LIMITS.update(
    {f"{ENDPOINT}.{view}": services.MAX_LIST_BYTES + 64 * 1024 for view in ("create", "edit", "import_file")}
)


class WordListForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=services.MAX_NAME)])
    action = SelectField(
        _l("Action"),
        choices=[
            SelectChoice("reject", _l("reject: refuse the text")),
            SelectChoice("mask", _l("mask: replace each hit with ***")),
        ],
    )
    enabled = BooleanField(_l("Enabled"), default=True)
    words = TextAreaField(_l("Words, one a line (a leading or trailing * also matches inside longer words)"))


class ImportForm(FlaskForm):
    file = FileField(_l("UTF-8 text file, one word a line"), validators=[FileRequired()])
    replace = BooleanField(_l("Replace the list's words (otherwise add to them)"))


def _problem(error: ApiError) -> str:
    fields = "; ".join(f"{name}: {text}" for name, text in error.fields.items())
    return f"{error.message} ({error.code}{': ' + fields if fields else ''})"


def _form_errors(form: FlaskForm) -> str:
    return "; ".join(f"{name}: {', '.join(errors)}" for name, errors in form.errors.items())


class WordListView(AdminOnly, BaseView):
    required_right = "manage_words"

    @expose("/")
    def index(self):
        rows = services.lists()
        return self.render("admin/word_lists.html", rows=rows, counts={row.id: _count(row) for row in rows})

    @expose("/new", methods=["GET", "POST"])
    def create(self):
        form = WordListForm()
        if request.method == "POST":
            if form.validate_on_submit():
                try:
                    row = services.create_list(
                        current_user.id, form.name.data, form.action.data, form.enabled.data, form.words.data
                    )
                except ApiError as error:
                    db.session.rollback()
                    flash(_("Nothing was saved: %(problem)s", problem=_problem(error)), "error")
                else:
                    flash(_('List "%(name)s" saved.', name=row.name), "success")
                    return redirect(url_for(".edit", list_id=row.id))
            else:
                flash(_("Nothing was saved: %(problem)s", problem=_form_errors(form)), "error")
        return self.render("admin/word_list.html", form=form, row=None)

    @expose("/<int:list_id>", methods=["GET", "POST"])
    def edit(self, list_id: int):
        row = db.session.get(WordList, list_id)
        if row is None:
            flash(_("No such word list."), "error")
            return redirect(url_for(".index"))
        form = WordListForm(obj=row) if request.method == "GET" else WordListForm()
        if request.method == "POST":
            if form.validate_on_submit():
                try:
                    services.update_list(
                        current_user.id,
                        list_id,
                        form.name.data,
                        form.action.data,
                        form.enabled.data,
                        form.words.data,
                    )
                except ApiError as error:
                    db.session.rollback()
                    flash(_("Nothing was saved: %(problem)s", problem=_problem(error)), "error")
                else:
                    flash(_("List saved."), "success")
                    return redirect(url_for(".edit", list_id=list_id))
            else:
                flash(_("Nothing was saved: %(problem)s", problem=_form_errors(form)), "error")
        return self.render(
            "admin/word_list.html",
            form=form,
            row=row,
            count=_count(row),
            upload=ImportForm(),
            remove=ReasonForm(),
        )

    @expose("/<int:list_id>/import", methods=["POST"])
    def import_file(self, list_id: int):
        form = ImportForm()
        back = url_for(".edit", list_id=list_id)
        if not form.validate_on_submit():
            flash(_("Nothing was imported: %(problem)s", problem=_form_errors(form)), "error")
            return redirect(back)
        data = form.file.data.read(services.MAX_LIST_BYTES + 1)
        try:
            added = services.import_words(current_user.id, list_id, data, replace=form.replace.data)
        except ApiError as error:
            db.session.rollback()
            flash(_("Nothing was imported: %(problem)s", problem=_problem(error)), "error")
        else:
            flash(_("Imported: %(count)s new words.", count=added), "success")
        return redirect(back)

    @expose("/<int:list_id>/delete", methods=["POST"])
    def delete(self, list_id: int):
        form = ReasonForm()
        if not form.validate_on_submit():
            flash(_("Nothing was deleted: %(problem)s", problem=_form_errors(form)), "error")
            return redirect(url_for(".edit", list_id=list_id))
        try:
            services.delete_list(current_user.id, list_id, form.reason.data or "")
        except ApiError as error:
            db.session.rollback()
            flash(_("Nothing was deleted: %(problem)s", problem=_problem(error)), "error")
        else:
            flash(_("List deleted."), "success")
        return redirect(url_for(".index"))


def _count(row: WordList) -> int:
    return len(row.words.splitlines()) if row.words else 0
