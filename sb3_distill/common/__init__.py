"""
The distillation core shared by every student: teacher loading and values, the distillation terms, the alpha rules,
the offline phase, the teacher-value replay buffers and the checks. Imports no student.
"""
